"""Data caps held by the router and fair use instead of a cut-off.

A customer buys through the real pages and M-Pesa (emulated); the router (emulated) counts
the traffic and enforces the cap by itself; the agent (``loop(now)``) reads the usage and
moves fair-use grants to their slow profile. Everything goes over real sockets.
"""
from __future__ import annotations

import re
from pathlib import Path
from datetime import timedelta

import pytest
from helpers import IP, LOGIN_URL, MAC, PAYER, USERS, visible_text, wait_for

from portal.i18n import format_date, format_datetime, format_time
from portal.models import Grant, OutboxEvent, Package, Purchase, db
from portal.routeros.words import slow_profile_name
from portal.sim.routeros_menus import SimTrap
from portal.timeutil import utcnow
from portal.venue.packages import create_package

pytestmark = pytest.mark.site(live_http=True, daraja=True, AGENT_ROUTER_CHECK_SECONDS=0)

DEVICE = {"mac": MAC, "ip": IP, "link-login-only": LOGIN_URL,
          "link-orig": "http://example.com/"}
MB = 1000 ** 2


@pytest.fixture
def capped(site):
    """A 100 MB package (cut off at the cap) and a 1 GB one that slows to 256k/256k."""
    with db.connection_context():
        hard = create_package(name_en="100 MB", price=20, validity="1d", rate_limit="2M/5M",
                              data_cap="100MB")
        fair = create_package(name_en="1 GB", price=50, validity="1d", rate_limit="2M/5M",
                              data_cap="1GB", fair_use_rate="256k/256k")
    return hard, fair


def buy_online(site, client, package: Package) -> tuple[str, str]:
    """Buy ``package`` on the customer's pages; returns (purchase reference, access code)
    once the phone is online."""
    response = client.post("/buy", data={"package": package.id, "phone": PAYER, **DEVICE})
    assert response.status_code == 303
    reference = response.headers["Location"].rsplit("/", 1)[1]

    def code():
        with db.connection_context():
            purchase = Purchase.get(Purchase.reference == reference)
            grant = Grant.get_or_none(Grant.purchase == purchase.id)
            return grant.username if grant and site.online(grant.username, IP) else None
    username = wait_for(code, timeout=10)
    assert username, "the customer never came online"
    return reference, username


def page(client, reference: str) -> str:
    return visible_text(client.get(f"/purchases/{reference}").get_data(as_text=True))


def router_user(site, name: str) -> dict:
    return next(row for row in site.router.rows(USERS) if row["name"] == name)


def slowed_events() -> list[dict]:
    with db.connection_context():
        return [e.data for e in OutboxEvent.select().where(OutboxEvent.kind == "grant.slowed")]


def test_the_router_cuts_a_capped_customer_off_with_the_appliance_stopped(site, client, agent,
                                                                          capped):
    hard, _fair = capped
    reference, code = buy_online(site, client, hard)
    assert "100 MB of 100 MB left" in page(client, reference)
    # The appliance is stopped from here on: no agent cycle, no portal call. The phone
    # uses 100 MB and the router alone ends the session and refuses it again.
    site.router.add_traffic(MAC, 10 * MB, 60 * MB)
    assert site.online(code, IP)
    site.router.add_traffic(MAC, 5 * MB, 25 * MB)
    assert not site.online(code, IP)
    with pytest.raises(SimTrap, match=f"user {code} has reached traffic limit"):
        site.router.device_logs_in(code, code, IP, MAC)  # the router's own login page
    # The appliance is back: the agent reads the usage, the page says it is used up.
    report = agent.loop(utcnow())
    assert report.ok, report.failed
    text = page(client, reference)
    assert "0 MB of 100 MB left" in text
    assert "You have used all your 100 MB of data. Buy more data to go back online." in text
    assert "Continue browsing" not in text
    assert client.get(f"/purchases/{reference}.json").get_json()["data_left"] == 0
    assert not site.online(code, IP)
    with client.session_transaction() as session:
        session["lang"] = "sw"
    assert "Umetumia data yako yote ya 100 MB" in page(client, reference)


def test_a_fair_use_customer_is_slowed_at_the_cap_and_stays_online(site, client, agent, capped):
    _hard, fair = capped
    reference, code = buy_online(site, client, fair)
    assert [q["max-limit"] for q in site.router.rows("/queue/simple")] == ["2M/5M"]
    site.router.add_traffic(MAC, 100 * MB, 400 * MB)
    now = utcnow()
    agent.loop(now)
    assert "500 MB of 1 GB left" in page(client, reference)
    # The cap: the router ends the session; the agent moves the user to the slow profile
    # and logs the phone in again, so the slow rate applies.
    site.router.add_traffic(MAC, 100 * MB, 400 * MB)
    assert not site.online(code, IP)
    report = agent.loop(now + timedelta(minutes=1))
    assert report.ok, report.failed
    assert report.done["fair_use"] == 1
    user = router_user(site, code)
    assert user["profile"] == slow_profile_name(fair.profile_name)
    assert user.get("limit-bytes-total", "0") == "0"
    (session,) = site.sessions(IP, MAC)
    assert session["user"] == code
    assert [q["max-limit"] for q in site.router.rows("/queue/simple")] == ["256k/256k"]
    profiles = {row["name"]: row for row in site.router.rows("/ip/hotspot/user/profile")}
    assert profiles[slow_profile_name(fair.profile_name)]["rate-limit"] == "256k/256k"
    with db.connection_context():
        grant = Grant.get(Grant.username == code)
    # The time alone when the package ends today (Nairobi), else the day too.
    same_day = format_date(grant.expires_at) == format_date(utcnow())
    until = (format_time if same_day else format_datetime)(grant.expires_at, "en")
    text = page(client, reference)
    assert f"You have used your 1 GB; you are now on slow speed until {until}." in text
    assert "Buy more data" in text
    html = client.get(f"/purchases/{reference}").get_data(as_text=True)
    # one tap: the top-up page of this very grant, offering the data packages
    link = re.search(r'<a id="buy-more" class="button" href="([^"]+)">', html).group(1)
    assert link.startswith("/topup?grant=")
    topup = visible_text(client.get(link.replace("&amp;", "&")).get_data(as_text=True))
    assert "1 GB" in topup and code in topup
    assert [e["grant_uuid"] for e in slowed_events()] == [f"grant-{grant.id}"]
    # Heavy use at the slow rate does not cut the customer off; a second cycle changes nothing.
    site.router.add_traffic(MAC, 500 * MB, 2000 * MB)
    report = agent.loop(now + timedelta(minutes=2))
    assert report.done["fair_use"] == 0
    assert [s[".id"] for s in site.sessions(IP, MAC)] == [session[".id"]]
    assert len(slowed_events()) == 1
    # The owner's activity log says so.
    with db.connection_context():
        from portal.models import AuditLog
        assert AuditLog.select().where(AuditLog.action == "grant.slowed").count() == 1


def test_a_stop_between_the_router_write_and_the_database_converges(site, client, agent,
                                                                     capped):
    _hard, fair = capped
    reference, code = buy_online(site, client, fair)
    site.router.add_traffic(MAC, 200 * MB, 800 * MB)
    # An agent killed right after its router writes: the user is slow, the database
    # does not know yet.
    site.gateway.update_user(code, profile=slow_profile_name(fair.profile_name),
                             limit_bytes_total=0)
    now = utcnow()
    report = agent.loop(now)
    assert report.ok, report.failed
    with db.connection_context():
        assert Grant.get(Grant.username == code).slowed_at == now
    assert len(slowed_events()) == 1 and site.online(code, IP)
    assert agent.loop(now + timedelta(minutes=1)).done["fair_use"] == 0
    assert len(slowed_events()) == 1


def test_reconcile_after_a_factory_reset_keeps_a_slowed_grant_slow(site, client, agent, capped):
    _hard, fair = capped
    _reference, code = buy_online(site, client, fair)
    site.router.add_traffic(MAC, 200 * MB, 800 * MB)
    now = utcnow()
    assert agent.loop(now).done["fair_use"] == 1
    site.router.factory_reset()
    report = agent.loop(now + timedelta(minutes=1))
    assert report.ok, report.failed
    user = router_user(site, code)
    assert user["profile"] == slow_profile_name(fair.profile_name)
    assert user.get("limit-bytes-total", "0") == "0"
    profiles = {row["name"]: row for row in site.router.rows("/ip/hotspot/user/profile")}
    assert profiles[slow_profile_name(fair.profile_name)]["rate-limit"] == "256k/256k"
    assert profiles[fair.profile_name]["rate-limit"] == "2M/5M"
    # Its counters restarted at 0 on the new router: it is not slowed a second time.
    assert agent.loop(now + timedelta(minutes=2)).done["fair_use"] == 0
    assert len(slowed_events()) == 1


def test_a_data_top_up_puts_a_slowed_customer_back_at_full_speed(site, client, agent, capped):
    from helpers import LOGIN_URL as LOGIN, SOURCE

    from portal.ledger import grants, purchases

    _hard, fair = capped
    with db.connection_context():
        more = create_package(name_en="500 MB", price=30, validity="1d", rate_limit="2M/5M",
                              data_cap="500MB")
    _reference, code = buy_online(site, client, fair)
    site.router.add_traffic(MAC, 300 * MB, 800 * MB)  # 1.1 GB: past the cap
    now = utcnow()
    assert agent.loop(now).done["fair_use"] == 1
    with db.connection_context():
        grant = Grant.get(Grant.username == code)
        assert grant.bytes_used == 1100 * MB
        purchase = purchases.start_purchase(
            more.id, PAYER, mac=MAC, ip=IP, link_login_only=LOGIN, link_orig="",
            mpesa=site.mpesa, callback_url=purchases.callback_url(site.app.config), now=now,
            gateway=site.gateway, source=SOURCE, topup_of=grant)

    def paid():
        with db.connection_context():
            return Purchase.get_by_id(purchase.id).status == Purchase.PAID
    assert wait_for(paid, timeout=15)
    report = agent.loop(now + timedelta(minutes=1))
    assert report.ok, report.failed
    with db.connection_context():
        grant = Grant.get(Grant.username == code)
        assert grant.slowed_at is None
        assert grants.data_cap_of(grant) == 1600 * MB
    # Back on the package's own profile, the new 500 MB counted on top of the 1.1 GB the
    # router has counted, and the phone logged in again at the full rate.
    user = router_user(site, code)
    assert user["profile"] == fair.profile_name
    assert user["limit-bytes-total"] == str(1600 * MB)
    assert site.online(code, IP)
    assert [q["max-limit"] for q in site.router.rows("/queue/simple")] == ["2M/5M"]
    assert "500 MB of 1.6 GB left" in page(client, _reference)
    # Not slowed again until the new data is used too; then slowed once more.
    assert agent.loop(now + timedelta(minutes=2)).done["fair_use"] == 0
    site.router.add_traffic(MAC, 100 * MB, 400 * MB)
    assert agent.loop(now + timedelta(minutes=3)).done["fair_use"] == 1
    assert router_user(site, code)["profile"] == slow_profile_name(fair.profile_name)


SCREENS = Path(__file__).resolve().parent.parent / "artifacts" / "screens"


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_the_slowed_page_on_a_phone_screen(site, agent, capped, browser, lang):
    _hard, fair = capped
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto(site.customer_url(MAC, IP) + f"&lang={lang}")
        page.locator(f'input[name="package"][value="{fair.id}"]').check()
        page.fill("#phone", PAYER)
        page.locator("button[type=submit]").first.click()
        page.wait_for_url(re.compile(r"/purchases/[A-Za-z0-9_-]{16,}$"))
        page.wait_for_selector('#status[data-status="online"]')
        site.router.add_traffic(MAC, 300 * MB, 400 * MB)
        agent.loop(utcnow())
        page.reload()
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / f"data-left-{lang}.png"), full_page=True)
        assert page.locator("#data-left").inner_text().startswith(
            "300 MB of 1 GB left" if lang == "en" else "300 MB kati ya 1 GB zimebaki")
        site.router.add_traffic(MAC, 100 * MB, 200 * MB)
        agent.loop(utcnow() + timedelta(minutes=1))
        page.reload()
        page.screenshot(path=str(SCREENS / f"slow-speed-{lang}.png"), full_page=True)
        note = page.locator("#data-note").inner_text()
        assert note.startswith("You have used your 1 GB" if lang == "en"
                               else "Umetumia 1 GB zako")
        button = page.locator("#buy-more").bounding_box()
        assert button and button["x"] >= 0 and button["x"] + button["width"] <= 360
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        context.close()
