"""A real browser (Debian's chromium, 360 px wide) buying WiFi against the emulated site.

Each test gets the whole demo site (``@pytest.mark.site(demo=True)``): emulated MikroTik,
emulated Daraja (the customer answers in 0.3 s), the portal on a real port and the agent;
chromium is launched once for the module. Each test is one phone (its own MAC and IP, its
own M-Pesa number, as the emulator refuses the same phone and amount twice in two
minutes). Screenshots of every page go to ``artifacts/screens/``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from helpers import Site

from portal.models import Grant, Purchase, db

SCREENS = Path(__file__).resolve().parent.parent / "artifacts" / "screens"
#: Long enough for a 0.3 s decision, the callback and the page's 2-3 s refresh.
SETTLE_MS = 15_000

pytestmark = pytest.mark.site(demo=True)


@pytest.fixture
def phone_page(browser):
    """A fresh 360x740 browser context (a phone); ``phone_page(js=False)`` without scripts."""
    contexts = []

    def open_page(js: bool = True):
        context = browser.new_context(viewport={"width": 360, "height": 740},
                                      java_script_enabled=js, locale="en-US")
        context.set_default_timeout(SETTLE_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def shot(page, name: str) -> None:
    """Save a full-page screenshot for a person to look at."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def pay(page, site: Site, *, mac: str, ip: str, package: str, phone: str,
        name: str) -> None:
    """Open the landing page as the router sends the phone there, choose, pay."""
    page.goto(site.customer_url(mac, ip))
    page.get_by_role("radio", name=re.compile(rf"^{re.escape(package)}\b")).check()
    page.fill("#phone", phone)
    shot(page, f"{name}-1-landing")
    page.get_by_role("button", name="Pay with M-Pesa").click()
    page.wait_for_url(re.compile(r"/purchases/[A-Za-z0-9_-]{16,}$"))
    shot(page, f"{name}-2-waiting")


def status_of(page) -> str:
    """The waiting page's machine-readable status."""
    return page.get_attribute("#status", "data-status")


def grant_of_page(page) -> Grant:
    """The Grant earned by the purchase shown on the page."""
    reference = page.url.rstrip("/").rsplit("/", 1)[1]
    with db.connection_context():
        return Grant.get(Grant.purchase == Purchase.get(Purchase.reference == reference).id)


def test_purchase_ends_online_on_the_router(site, phone_page):
    page = phone_page()
    mac, ip = "AA:BB:CC:00:01:01", "10.5.50.101"
    pay(page, site, mac=mac, ip=ip, package="1 hour", phone="0712000101", name="buy")
    assert status_of(page) in ("pending", "paid", "online")
    page.wait_for_selector('#status[data-status="online"]')
    shot(page, "buy-3-online")
    code = page.inner_text("#access-code").strip()
    session = site.wait_for_session(ip, mac, timeout=2)
    assert session["user"] == code
    assert re.fullmatch(r"[A-Z0-9]{10}", page.inner_text("#receipt").strip())
    assert "You are online" in page.inner_text("#status")
    grant = grant_of_page(page)
    assert grant.username == code and grant.package.name_en == "1 hour"


def test_cancelled_purchase_says_so_and_nobody_goes_online(site, phone_page):
    page = phone_page()
    mac, ip = "AA:BB:CC:00:01:02", "10.5.50.102"
    pay(page, site, mac=mac, ip=ip, package="1 hour", phone="0700001032", name="cancelled")
    page.wait_for_selector('#status[data-status="failed"]')
    shot(page, "cancelled-3-result")
    assert page.get_attribute("#reason", "data-reason") == "cancelled"
    assert "cancel" in page.inner_text("#reason").lower()
    assert page.query_selector("#access-code") is None
    assert site.sessions(ip, mac) == []
    page.get_by_role("link", name="Try again").click()
    assert page.input_value("#phone") == "0700001032"  # one tap to try again


def test_wrong_pin_says_so(site, phone_page):
    page = phone_page()
    mac, ip = "AA:BB:CC:00:01:03", "10.5.50.103"
    pay(page, site, mac=mac, ip=ip, package="1 day", phone="0700002001", name="wrongpin")
    page.wait_for_selector('#status[data-status="failed"]')
    shot(page, "wrongpin-3-result")
    assert page.get_attribute("#reason", "data-reason") == "wrong_pin"
    assert "pin" in page.inner_text("#reason").lower()
    assert site.sessions(ip, mac) == []


def test_voucher_login(site, phone_page):
    [code] = site.make_vouchers("1 day", 1)
    assert code in {row["name"] for row in site.router.rows("/ip/hotspot/user")}
    page = phone_page()
    mac, ip = "AA:BB:CC:00:01:04", "10.5.50.104"
    page.goto(site.customer_url(mac, ip))
    page.fill("#voucher-code", code)
    shot(page, "voucher-1-landing")
    page.get_by_role("button", name="Use voucher").click()
    page.wait_for_selector("#access-code")
    shot(page, "voucher-2-online")
    assert page.inner_text("#access-code").strip() == code
    assert site.wait_for_session(ip, mac, timeout=2)["user"] == code


def test_reconnect_by_receipt_logs_in_a_second_device(site, phone_page):
    first = phone_page()
    pay(first, site, mac="AA:BB:CC:00:01:05", ip="10.5.50.105", package="1 week",
        phone="0712000105", name="reconnect")
    first.wait_for_selector('#status[data-status="online"]')
    receipt = first.inner_text("#receipt").strip()
    code = first.inner_text("#access-code").strip()

    second = phone_page()  # another phone: the 1 week package allows two devices
    mac, ip = "AA:BB:CC:00:01:55", "10.5.50.155"
    second.goto(site.customer_url(mac, ip))
    second.get_by_role("link", name="Already paid? Reconnect").first.click()
    second.fill("#code", receipt)
    shot(second, "reconnect-4-form")
    second.get_by_role("button", name="Reconnect").click()
    second.wait_for_selector("#access-code")
    shot(second, "reconnect-5-online")
    assert second.inner_text("#access-code").strip() == code
    assert site.wait_for_session(ip, mac, timeout=2)["user"] == code
    assert len(site.sessions()) >= 2 and all(
        s["user"] == code for s in site.sessions() if s["address"] in ("10.5.50.105", ip))


def test_purchase_completes_with_javascript_off(site, phone_page):
    page = phone_page(js=False)
    mac, ip = "AA:BB:CC:00:01:06", "10.5.50.106"
    pay(page, site, mac=mac, ip=ip, package="1 hour", phone="0712000106", name="nojs")
    # Only the page's <meta http-equiv="refresh"> can bring it forward.
    assert page.query_selector('meta[http-equiv="refresh"]') is not None
    page.wait_for_selector('#status[data-status="online"]')
    shot(page, "nojs-3-online")
    code = page.inner_text("#access-code").strip()
    assert site.wait_for_session(ip, mac, timeout=2)["user"] == code
    with db.connection_context():
        assert Purchase.get(Purchase.phone == "254712000106").status == Purchase.PAID


def test_swahili_landing(site, phone_page):
    page = phone_page()
    page.goto(site.customer_url("AA:BB:CC:00:01:07", "10.5.50.107", lang="sw"))
    shot(page, "swahili-landing")
    assert page.get_attribute("html", "lang") == "sw"
    assert page.inner_text("#buy-form h2") == "Chagua kifurushi"
    assert page.get_by_role("button", name="Lipa kwa M-Pesa").is_visible()
    names = page.locator(".pkg label span:first-of-type").all_inner_texts()
    assert [n.split("\n")[0] for n in names][:4] == ["Saa 1", "Siku 1", "Wiki 1", "Mwezi 1"]
    prices = page.locator(".price").all_inner_texts()
    assert prices == ["KES 10", "KES 50", "KES 250", "KES 800"]
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def in_view(page, selector: str) -> bool:
    """Is the whole element inside the 360x740 screen as the page now stands (no scroll)?"""
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 740 and \
        box["x"] >= 0 and box["x"] + box["width"] <= 360


@pytest.mark.parametrize("js", [True, False])
def test_a_wrong_voucher_or_phone_error_is_on_screen_after_submitting(site, phone_page, js):
    """The errors used to land below the fold (y = 1108 and 787): nothing seemed to happen."""
    page = phone_page(js=js)
    page.goto(site.customer_url("AA:BB:CC:00:01:08", "10.5.50.108"))
    page.fill("#voucher-code", "99999999")
    page.get_by_role("button", name="Use voucher").click()
    page.wait_for_selector("#code-error")
    shot(page, f"voucher-error-{'js' if js else 'nojs'}")
    assert in_view(page, "#code-error") and in_view(page, "#voucher-code")
    page.goto(site.customer_url("AA:BB:CC:00:01:08", "10.5.50.108"))
    page.get_by_role("radio", name=re.compile(r"^1 day\b")).check()
    page.fill("#phone", "0812 345")
    page.get_by_role("button", name="Pay with M-Pesa").click()
    page.wait_for_selector("#phone-error")
    shot(page, f"phone-error-{'js' if js else 'nojs'}")
    assert in_view(page, "#phone-error") and in_view(page, "#phone")


def test_try_again_after_a_cancel_sends_a_new_prompt(site, phone_page):
    page = phone_page()
    pay(page, site, mac="AA:BB:CC:00:01:09", ip="10.5.50.109", package="1 day",
        phone="0700001032", name="retry")
    page.wait_for_selector('#status[data-status="failed"]')
    page.get_by_role("link", name="Try again").click()
    page.get_by_role("button", name="Pay with M-Pesa").click()
    # A new waiting page, not the landing page refusing with "already sent".
    page.wait_for_url(re.compile(r"/purchases/[A-Za-z0-9_-]{16,}$"))
    shot(page, "retry-2-waiting")
    with db.connection_context():
        assert Purchase.select().where(Purchase.phone == "254700001032").count() == 2


def test_swahili_page_gives_the_date_in_swahili(site, phone_page):
    from portal.i18n import format_datetime
    from portal.timeutil import to_nairobi

    [code] = site.make_vouchers("1 day", 1)
    page = phone_page()
    page.goto(site.customer_url("AA:BB:CC:00:01:0A", "10.5.50.110", lang="sw"))
    page.fill("#voucher-code", code)
    page.get_by_role("button", name="Tumia vocha").click()
    page.wait_for_selector("#access-code")
    shot(page, "swahili-voucher-online")
    with db.connection_context():
        expires = Grant.get(Grant.username == code).expires_at
    until = page.locator("dt:has-text('Inatumika hadi') + dd").inner_text().strip()
    assert until == format_datetime(expires, "sw")  # Nairobi time, "4 Des 2026 07:15"
    swahili_months = ["Jan", "Feb", "Mac", "Apr", "Mei", "Jun", "Jul", "Ago", "Sep", "Okt",
                      "Nov", "Des"]
    assert until.split()[1] == swahili_months[to_nairobi(expires).month - 1]


def test_paying_from_the_menu_when_no_prompt_comes(site, phone_page):
    """The prompt never reaches the phone; the page shows the PayBill and the account
    code; the customer pays from the M-Pesa menu (the emulator's control interface) and
    the waiting page goes online by itself."""
    page = phone_page()
    mac, ip, phone = "AA:BB:CC:00:01:0B", "10.5.50.111", "254700001037"
    site.daraja.set_phone(phone, callback="lost", query_outage=True)
    pay(page, site, mac=mac, ip=ip, package="1 hour", phone="0700001037", name="c2b")
    assert status_of(page) == "pending"
    paybill = page.inner_text("#menu-paybill").strip()
    account = page.inner_text("#menu-account").strip()
    assert paybill == site.daraja.shortcode and re.fullmatch(r"[A-Z0-9]{5}", account)
    shot(page, "c2b-2-no-prompt")
    control = f"http://127.0.0.1:{site.daraja.control_port}/c2b/pay"
    paid = requests.post(control, json={"phone": phone, "amount": 10, "account": account},
                         timeout=10).json()
    assert paid["confirmation_status"] == 200
    page.wait_for_selector('#status[data-status="online"]')
    shot(page, "c2b-3-online")
    assert page.inner_text("#receipt").strip() == paid["receipt"]
    code = page.inner_text("#access-code").strip()
    assert site.wait_for_session(ip, mac, timeout=2)["user"] == code
    assert page.query_selector("#pay-from-menu") is None


def test_windows_top_up_and_free_trial_on_a_phone(site, phone_page):
    from portal.venue.packages import create_package
    from portal.venue.trial import save_trial

    with db.connection_context():
        create_package(name_en="Night", name_sw="Usiku", price=30, validity="8h",
                       hours="22:00-06:00")
        create_package(name_en="Weekend", name_sw="Wikendi", price=100, validity="2d",
                       days="sat,sun")
        save_trial("owner", "", minutes="15", package_id=1)  # the demo's first package
    page = phone_page()
    mac, ip = "AA:BB:CC:00:01:31", "10.5.50.131"
    pay(page, site, mac=mac, ip=ip, package="1 hour", phone="0712000131", name="topup")
    page.wait_for_selector('#status[data-status="online"]')
    code = page.inner_text("#access-code").strip()
    page.click("#buy-more")
    page.wait_for_url(re.compile(r"/topup\?grant=\d+$"))
    assert code in page.inner_text("#access-code")
    shot(page, "topup-2-choose")
    page.get_by_role("radio", name=re.compile(r"^1 day\b")).check()
    page.fill("#phone", "0712000132")
    page.get_by_role("button", name="Pay with M-Pesa").click()
    page.wait_for_url(re.compile(r"/purchases/[A-Za-z0-9_-]{16,}$"))
    page.wait_for_selector('#status[data-status="online"]')
    assert page.inner_text("#access-code").strip() == code  # the same code, more time
    assert "1 day" in page.inner_text("#time-left")
    shot(page, "topup-3-extended")

    trial = phone_page()
    trial.goto(site.customer_url("AA:BB:CC:00:01:33", "10.5.50.133"))
    assert "Every night 22:00 - 06:00" in trial.inner_text("main")
    assert "Saturdays and Sundays" in trial.inner_text("main")
    shot(trial, "trial-1-landing")
    trial.fill("#trial-phone", "0712000133")
    trial.get_by_role("button", name="Start free trial").click()
    trial.wait_for_selector('#status[data-status="online"]')
    shot(trial, "trial-2-online")
    trial.goto(site.customer_url("AA:BB:CC:00:01:33", "10.5.50.133"))
    trial.fill("#trial-phone", "0712000134")
    trial.get_by_role("button", name="Start free trial").click()
    assert "once a day" in trial.inner_text("#trial-error")
    shot(trial, "trial-3-refused")
    sw = phone_page()
    sw.goto(site.customer_url("AA:BB:CC:00:01:35", "10.5.50.135", lang="sw"))
    assert "Kila usiku 22:00 - 06:00" in sw.inner_text("main")
    shot(sw, "trial-4-landing-sw")
