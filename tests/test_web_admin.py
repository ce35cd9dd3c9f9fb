"""The owner's pages on a phone (chromium at 360x740): lists read as cards with every
action inside the screen, the header stays small, the router's figures stay in their card,
and the printable sheet keeps Print and Back in reach. English and Swahili."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    IP, MAC, TECH_NAME, TECH_PASSWORD, Browser, make_users, package, paid,
)

from portal.models import Purchase, db
from portal.timeutil import utcnow

pytestmark = pytest.mark.site(live_http=True, packages=True)

SCREENS = Path(__file__).resolve().parent.parent / "artifacts" / "screens" / "admin"
WIDTH, HEIGHT = 360, 740
#: The header used to take 260 px of the 740 px screen.
HEADER_MAX = 110
OWNER_PAGES = ["/admin/dashboard", "/admin/vouchers", "/admin/vouchers/1", "/admin/users",
               "/admin/router", "/admin/search?q=0712", "/admin/packages", "/admin/audit",
               "/admin/grant", "/admin/branding", "/admin/sms"]


@pytest.fixture
def busy_site(site):
    """A site with long texts where they hurt: failure reasons, receipts, a device online."""
    from portal.ledger.grants import manual_grant
    from portal.venue.vouchers import create_batch, push_batch
    from portal.web import app_router

    make_users(site.app)
    with site.app.app_context(), db.connection_context():
        hour = package("1 hour")
        now = utcnow()
        paid(hour, 10, now, paid_amount=10, receipt="TCB7XYZ1QP", phone="254712345678")
        paid(hour, 10, now, status=Purchase.FAILED, phone="254712000001",
             desc="DS timeout user cannot be reached. The initiator information is invalid.")
        batch = create_batch(hour, 12, now, "mama-njeri")
        push_batch(batch.id, app_router(site.app), now)
        code = manual_grant(hour.id, "paid but not connected", app_router(site.app), now,
                            "mama-njeri").username
        app_router(site.app).login(code, code, IP, MAC)
    return site


def phone_context(browser, site, user: Browser):
    """A 360x740 phone signed in as ``user``."""
    cookie = user.client.get_cookie("kibanda_session").value
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    context.add_cookies([{"name": "kibanda_session", "value": cookie, "url": site.url}])
    return context


def overflow(page) -> list[str]:
    """What sticks out of the phone's screen sideways: the page itself, or a control."""
    return page.evaluate("""() => {
      const out = [];
      if (document.documentElement.scrollWidth > window.innerWidth)
        out.push('page ' + document.documentElement.scrollWidth);
      for (const el of document.querySelectorAll('main button, main a.button, main input, main select, main td, main dl div')) {
        const box = el.getBoundingClientRect();
        if (box.width && (box.left < 0 || box.right > window.innerWidth + 0.5))
          out.push(el.tagName + ' ' + (el.textContent || el.name || '').trim().slice(0, 30) + ' ' + Math.round(box.right));
      }
      return out;
    }""")


def shot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_owner_pages_fit_a_phone_screen_with_every_action_in_reach(busy_site, browser, lang):
    owner = Browser(busy_site.app)
    owner.login()
    context = phone_context(browser, busy_site, owner)
    page = context.new_page()
    try:
        for url in OWNER_PAGES:
            page.goto(f"{busy_site.url}{url}{'&' if '?' in url else '?'}lang={lang}")
            name = url.strip("/").replace("/", "-").replace("?q=", "-")
            shot(page, f"{name}-{lang}")
            assert overflow(page) == [], (url, overflow(page))
            header = page.locator("header.top").bounding_box()
            assert header["height"] <= HEADER_MAX, (url, header["height"])
        # Lists are cards: a receipt, a failure reason and the Kick button are on screen.
        page.goto(f"{busy_site.url}/admin/dashboard?lang={lang}")
        for text in ("TCB7XYZ1QP", "0712 000 001", "DS timeout user cannot be reached"):
            box = page.get_by_text(text).first.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, text
        kick = page.locator("#sessions button").first.bounding_box()
        assert kick and kick["x"] + kick["width"] <= WIDTH
        # The router's figures stay inside their card.
        card = page.locator("#router").bounding_box()
        for tile in page.locator("#router dl.facts div").all():
            box = tile.bounding_box()
            assert box["x"] >= card["x"] and box["x"] + box["width"] <= card["x"] + card["width"]
        # The folded menu opens without script and holds every page.
        page.locator("label.menu-button").click()
        assert page.locator("#menu nav a").count() == 11
        assert page.locator("#menu .signout button").is_visible()
        shot(page, f"menu-open-{lang}")
    finally:
        context.close()


def test_menu_and_cards_work_without_javascript(busy_site, browser):
    tech = Browser(busy_site.app)
    tech.login(TECH_NAME, TECH_PASSWORD)
    cookie = tech.client.get_cookie("kibanda_session").value
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT},
                                  java_script_enabled=False)
    context.add_cookies([{"name": "kibanda_session", "value": cookie, "url": busy_site.url}])
    page = context.new_page()
    try:
        page.goto(f"{busy_site.url}/admin/router")
        shot(page, "router-technician-nojs")
        assert overflow(page) == []
        assert not page.locator("#menu nav").is_visible()
        page.locator("label.menu-button").click()
        assert page.locator("#menu nav a", has_text="Packages").is_visible()
        # Kick asks first, on a page of its own, with the button on screen.
        page.locator("#sessions button", has_text="Kick").first.click()
        page.wait_for_selector("#confirm")
        shot(page, "kick-confirm-nojs")
        button = page.locator("#confirm-button").bounding_box()
        assert button["y"] + button["height"] <= HEIGHT and button["x"] + button["width"] <= WIDTH
        page.locator("#confirm-button").click()
        page.wait_for_selector(".flash.ok")
        assert "was logged out" in page.inner_text(".flash.ok")
        assert busy_site.router.rows("/ip/hotspot/active") == []
    finally:
        context.close()


def test_print_page_on_a_phone_has_print_and_back_on_screen(busy_site, browser):
    owner = Browser(busy_site.app)
    owner.login()
    context = phone_context(browser, busy_site, owner)
    page = context.new_page()
    try:
        for layout in ("a4", "58mm"):
            page.goto(f"{busy_site.url}/admin/vouchers/1/print?layout={layout}")
            shot(page, f"print-{layout}")
            for selector in ("#print", "#back"):
                box = page.locator(selector).bounding_box()
                assert box and 0 <= box["x"] and box["x"] + box["width"] <= WIDTH, selector
                assert 0 <= box["y"] and box["y"] + box["height"] <= HEIGHT, selector
        page.locator("#back").click()
        page.wait_for_url(f"{busy_site.url}/admin/vouchers/1")
    finally:
        context.close()
