"""Sales at a glance: figures by Nairobi day/week/month, chart, search, router, free grants."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta

import pytest
from helpers import Browser, make_package, make_users, paid, visible_text

from portal.venue import reports
from portal.models import AuditLog, Grant, Package, Purchase, Voucher, db
from portal.timeutil import utcnow


def test_dashboard_page_today_excludes_last_night(app, router_sim):
    make_users(app)
    package = make_package(app, name_en="1 day", price=50, validity="1d")
    now = utcnow()
    local_now = now + timedelta(hours=3)
    last_night = datetime(local_now.year, local_now.month, local_now.day, 23, 30) \
        - timedelta(days=1, hours=3)
    with app.app_context(), db.connection_context():
        paid(package, 50, now - timedelta(seconds=5), paid_amount=50, receipt="TCB7XYZ1")
        paid(package, 50, last_night, paid_amount=50, receipt="TCB7XYZ2")
        paid(package, 50, now, status=Purchase.FAILED, phone="254711000111",
             desc="The balance is insufficient for the transaction.")
    owner = Browser(app)
    owner.login()
    html = owner.text("/admin/dashboard")
    today = html.split('id="money-today"')[1].split("</section>")[0]
    assert 'class="total">50<' in today and "(1)" in today
    page = visible_text(html)
    assert "The balance is insufficient for the transaction." in page
    assert "<svg" in html and "<script" not in html and "http://" not in html.replace(
        "http://www.w3.org", "")
    assert "Reachable" in page and "7.16" in page  # the emulator's RouterOS version
    thirty = owner.text("/admin/dashboard?days=30")
    assert "Last 30 days: KES 100" in visible_text(thirty)


def test_search_by_phone_receipt_and_code(app, sales):
    make_users(app)
    owner = Browser(app)
    owner.login()
    by_phone = visible_text(owner.text("/admin/search?q=0799 999 999"))
    assert "Request cancelled by user" in by_phone and "254799999999" in by_phone
    assert "TCB1" in visible_text(owner.text("/admin/search?q=tcb1"))
    with app.app_context(), db.connection_context():
        code = Voucher.select().where(Voucher.batch == sales["batch"].id).first().code
    found = visible_text(owner.text(f"/admin/search?q={code}"))
    assert code in found and "used" in found
    assert "Nothing found for 0700000000." in visible_text(owner.text("/admin/search?q=0700000000"))


def test_free_access_code_works_on_the_router_and_kick(app, router_sim):
    make_users(app)
    package = make_package(app)
    owner = Browser(app)
    owner.login()
    refused = owner.post("/admin/grant", {"package": str(package.id), "note": ""})
    assert refused.status_code == 400 and "Write why you give this access" in \
        refused.get_data(as_text=True)
    response = owner.post("/admin/grant", {"package": str(package.id),
                                           "note": "paid 0712345678, not connected"})
    html = response.get_data(as_text=True)
    assert "The code is on the router and works now." in html
    code = html.split('id="access-code">')[1].split("<")[0]
    with app.app_context(), db.connection_context():
        grant = Grant.get(Grant.username == code)
        assert grant.source == Grant.MANUAL and grant.created_by == "mama-njeri"
        assert AuditLog.select().where(AuditLog.action == "grant.manual").count() == 1
        # Free access is not money.
        assert reports.takings_by_period(utcnow())["today"].total == 0
    user = next(r for r in router_sim.rows("/ip/hotspot/user") if r["name"] == code)
    assert user["profile"] == package.profile_name

    # The customer logs in with it; the owner sees the device and kicks it.
    from portal.web import app_router

    with app.app_context():
        app_router(app).login(code, code, "10.5.50.23", "AA:BB:CC:DD:EE:01")
    page = owner.text("/admin/router")
    assert code in page and "10.5.50.23" in page
    active_id = router_sim.rows("/ip/hotspot/active")[0][".id"]
    kicked = owner.post(f"/admin/sessions/{active_id}/kick", {"user": code, "back": "/admin/router"},
                        follow_redirects=True)
    assert f"{code} was logged out." in kicked.get_data(as_text=True)
    assert router_sim.rows("/ip/hotspot/active") == []
    assert "Nobody is online." in owner.text("/admin/router")


def test_unreachable_router_says_so_and_the_page_still_works(make_site):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = make_site(ROUTER_PORT=closed_port, ROUTER_TIMEOUT=1.0).app
    make_users(app)
    package = make_package(app)
    with app.app_context(), db.connection_context():
        paid(package, 20, utcnow(), paid_amount=20)
    owner = Browser(app)
    owner.login()
    page = visible_text(owner.text("/admin/dashboard"))
    assert "Not reachable" in page and "connection failed" in page
    assert "Sales are still recorded." in page
    assert "Today KES 20" in page
    granted = owner.post("/admin/grant", {"package": str(package.id), "note": "sorry"})
    assert "the code will work as soon as it is back" in granted.get_data(as_text=True)
    with app.app_context(), db.connection_context():
        assert Grant.get().router_state == Grant.PENDING
        assert Package.select().count() == 1


@pytest.mark.site(live_http=True)
def test_sales_the_hub_refused_are_a_red_notice_in_english_and_swahili(app, site, browser):
    from helpers import OWNER_NAME, OWNER_PASSWORD
    from system_tools import ARTIFACTS

    from portal import upstream

    make_users(app)
    app.config.update(UPSTREAM_URL="https://hub.example.co.ke", SITE_ID="mama-njeri",
                      UPSTREAM_KEY_ID="0123456789abcdef")
    with app.app_context(), db.connection_context():
        from portal.models import OutboxEvent

        for n in range(3):
            OutboxEvent.record("sale", amount=50, n=n)
        upstream.write_state(**{upstream.STOPPED: "hub answered 401: unknown key"})
    ARTIFACTS.mkdir(exist_ok=True)
    for lang, headline in (("en", "Sales are not reaching the operator."),
                           ("sw", "Mauzo hayamfikii mwendeshaji.")):
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(f"{site.url}/admin/login?lang={lang}")
        page.fill("input[name=username]", OWNER_NAME)
        page.fill("input[name=password]", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{site.url}/admin/dashboard")
        notice = page.locator("#sync").inner_text()
        assert headline in notice and "unknown key" in notice and "3" in notice
        page.screenshot(path=str(ARTIFACTS / f"dashboard-sync-stopped-{lang}.png"))
        page.close()
