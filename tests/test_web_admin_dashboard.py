"""Sales at a glance: figures by Nairobi day/week/month, chart, search, router, free grants."""
from __future__ import annotations

import re
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
    # Plain words for the owner; Daraja's own text only inside a details line.
    assert "The customer's M-Pesa balance was too low." in page and "0711 000 111" in page
    assert "words</summary><small>The balance is insufficient for the transaction.</small>" \
        "</details>" in html
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
    assert "The customer cancelled the request." in by_phone and "0799 999 999" in by_phone
    assert "254799999999" not in by_phone
    assert "TCB1" in visible_text(owner.text("/admin/search?q=tcb1"))
    with app.app_context(), db.connection_context():
        code = Voucher.select().where(Voucher.batch == sales["batch"].id).first().code
    found = visible_text(owner.text(f"/admin/search?q={code}"))
    assert code in found and "used" in found
    # Partial: the start of a number, of a receipt, of a code.
    for typed in ("0799", "+254 79", "799 99"):
        partial = visible_text(owner.text(f"/admin/search?q={typed}"))
        assert "0799 999 999" in partial and "0712 345 678" not in partial, typed
    assert partial.count("failed") == 1
    assert visible_text(owner.text("/admin/search?q=0712")).count("0712 345 678") == 5
    assert "TCB1" in visible_text(owner.text("/admin/search?q=tcb"))
    assert code in visible_text(owner.text(f"/admin/search?q={code[:4]}"))
    assert "Nothing found for 0700000000." in visible_text(owner.text("/admin/search?q=0700000000"))


def test_owner_reads_why_a_sale_failed_in_swahili_and_a_missing_receipt(app):
    make_users(app)
    package = make_package(app, name_en="1 day", name_sw="Siku 1", price=50, validity="1d")
    now = utcnow()
    with app.app_context(), db.connection_context():
        paid(package, 50, now, status=Purchase.FAILED, phone="254722000222",
             desc="DS timeout user cannot be reached")
        Purchase.update(result_code=1037).where(Purchase.phone == "254722000222").execute()
        paid(package, 50, now, status=Purchase.FAILED, phone="254733000333",
             desc="The initiator information is invalid.")  # no code: known by its words
        paid(package, 50, now, paid_amount=50, phone="254744000444")  # credited by query
    owner = Browser(app)
    owner.login()
    english = visible_text(owner.text("/admin/dashboard"))
    assert "receipt not yet received from M-Pesa" in english
    assert "The customer's phone could not be reached (switched off or no network)." in english
    assert "The customer entered a wrong M-Pesa PIN." in english
    swahili = visible_text(owner.text("/admin/dashboard?lang=sw"))
    assert "Simu ya mteja haikufikika (imezimwa au haina mtandao)." in swahili
    assert "Mteja aliweka PIN ya M-Pesa isiyo sahihi." in swahili
    assert "risiti bado haijapokelewa kutoka M-Pesa" in swahili
    assert "Siku 1" in swahili and "0744 000 444" in swahili


def test_free_access_code_works_on_the_router_and_kick(app, router_sim):
    make_users(app)
    package = make_package(app)
    owner = Browser(app)
    owner.login()
    refused = owner.post("/admin/grant", {"package": str(package.id), "note": ""})
    assert refused.status_code == 400 and "Write why you give this access" in \
        refused.get_data(as_text=True)
    form = {"package": str(package.id), "note": "paid 0712345678, not connected"}
    # One tap only asks: nothing is given yet.
    asked = owner.post("/admin/grant", form).get_data(as_text=True)
    assert "Give this free access?" in asked and "paid 0712345678, not connected" in asked
    key = re.search(r'name="request_key" value="([^"]+)"', asked).group(1)
    with app.app_context(), db.connection_context():
        assert Grant.select().count() == 0
    confirm = {**form, "confirmed": "yes", "request_key": key}
    response = owner.post("/admin/grant", confirm)
    # Post, redirect, get: reloading the code's page never gives it again.
    assert response.status_code == 303
    given_url = response.headers["Location"]
    html = owner.text(given_url)
    assert "The code is on the router and works now." in html
    code = html.split('id="access-code">')[1].split("<")[0]
    assert 'name="note" value=""' in html  # the form is empty again
    # The same confirmation sent twice (a double tap) gives the same grant, not a second.
    twice = owner.post("/admin/grant", confirm)
    assert twice.headers["Location"] == given_url
    with app.app_context(), db.connection_context():
        grant = Grant.get(Grant.username == code)
        assert grant.source == Grant.MANUAL and grant.created_by == "mama-njeri"
        assert Grant.select().count() == 1
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
    asked = owner.post(f"/admin/sessions/{active_id}/kick", {"back": "/admin/router"})
    assert "Log this device out of the WiFi?" in visible_text(asked.get_data(as_text=True))
    assert len(router_sim.rows("/ip/hotspot/active")) == 1  # asking kicks nobody
    kicked = owner.post(f"/admin/sessions/{active_id}/kick",
                        {"back": "/admin/router", "user": code, "confirmed": "yes"},
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
    granted = owner.post("/admin/grant", {"package": str(package.id), "note": "sorry",
                                          "confirmed": "yes"}, follow_redirects=True)
    assert "the code will work as soon as it is back" in granted.get_data(as_text=True)
    with app.app_context(), db.connection_context():
        assert Grant.get().router_state == Grant.PENDING
        assert Package.select().count() == 1


def test_dashboard_says_plainly_when_the_agent_stopped(site, agent):
    from portal.timeutil import format_local

    make_users(site.app)
    owner = Browser(site.app)
    owner.login()
    never = visible_text(owner.text("/admin/dashboard"))
    assert "The agent has not run yet." in never
    # The agent's last cycle was 20 minutes ago (heartbeat every 5 minutes): stopped.
    last = utcnow() - timedelta(minutes=20)
    agent.loop(last)
    page = visible_text(owner.text("/admin/dashboard"))
    # HH:MM in Nairobi (with the date in front when it was not today).
    assert "Agent stopped since" in page and f"{format_local(last, '%H:%M')}." in page
    assert "Payments are not being checked" in page
    swahili = visible_text(owner.text("/admin/dashboard?lang=sw"))
    assert "(agent) imesimama tangu" in swahili and "Washa upya kifaa" in swahili
    # Running again: the notice is gone.
    agent.loop(utcnow())
    assert 'id="agent-stopped"' not in owner.text("/admin/dashboard")


@pytest.mark.site(live_http=True)
def test_owners_phone_shows_the_agent_stopped_notice_first(site, agent, browser):
    from helpers import OWNER_NAME, OWNER_PASSWORD
    from system_tools import ARTIFACTS

    make_users(site.app)
    agent.loop(utcnow() - timedelta(hours=2))
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="en-US")
    try:
        page = context.new_page()
        page.goto(site.url + "/admin/login")
        page.fill("input[name=username]", OWNER_NAME)
        page.fill("input[name=password]", OWNER_PASSWORD)
        page.press("input[name=password]", "Enter")
        page.wait_for_url("**/admin/dashboard")
        notice = page.locator("#agent-stopped")
        assert notice.is_visible() and "Agent stopped since" in notice.inner_text()
        assert notice.bounding_box()["y"] < 740  # seen without scrolling
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-agent-stopped.png"))
    finally:
        context.close()


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
