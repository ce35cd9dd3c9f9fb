"""Sales at a glance: figures by Nairobi day/week/month, chart, search, router, free grants."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta

import pytest
from test_admin_support import (  # noqa: F401 - fixtures
    Browser, make_package, make_users, router_sim, site, site_config, visible_text,
)

from portal import create_app
from portal.venue import reports
from portal.models import AuditLog, Grant, Package, Purchase, Voucher, db
from portal.timeutil import utcnow
from portal.venue.vouchers import create_batch

# Wednesday 11 March 2026, 12:00 in Nairobi (UTC+3).
NOW = datetime(2026, 3, 11, 9, 0)


def nairobi(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A Nairobi wall-clock time in 2026 as stored naive UTC."""
    return datetime(2026, month, day, hour, minute) - timedelta(hours=3)


def paid(package, amount, at, paid_amount=None, phone="254712345678", receipt=None,
         status=Purchase.PAID, desc=None) -> Purchase:
    return Purchase.create(phone=phone, package=package, amount=amount, paid_amount=paid_amount,
                           status=status, settled_at=at if status == Purchase.PAID else None,
                           created_at=at, receipt=receipt, result_desc=desc)


def used_voucher(batch, at) -> None:
    voucher = Voucher.select().where((Voucher.batch == batch.id)
                                     & Voucher.first_login_at.is_null()).first()
    Voucher.update(state=Voucher.USED, first_login_at=at).where(Voucher.id == voucher.id).execute()


@pytest.fixture
def sales(site):
    """A month of known sales around NOW."""
    hour = make_package(site, name_en="1 hour", price=20, validity="1h")
    day = make_package(site, name_en="1 day", price=50, validity="1d")
    week = make_package(site, name_en="1 week", price=250, validity="7d")
    month = make_package(site, name_en="1 month", price=800, validity="30d")
    with site.app_context(), db.connection_context():
        paid(day, 50, nairobi(11, 11), paid_amount=50, receipt="TCB1")        # today
        paid(hour, 20, nairobi(11, 0, 10))                                    # today, 00:10
        paid(week, 250, nairobi(10, 23, 30), paid_amount=250)                 # 23:30 yesterday
        paid(day, 50, nairobi(11, 10), status=Purchase.FAILED,
             desc="Request cancelled by user", phone="254799999999")          # not money
        paid(month, 800, nairobi(2, 9), paid_amount=800)                      # last week
        paid(day, 50, nairobi(28, 23, month=2), paid_amount=50)               # February
        batch = create_batch(hour, 5, nairobi(1, 8), "mama")
        used_voucher(batch, nairobi(11, 10))                                  # today
        used_voucher(batch, nairobi(9, 8))                                    # Monday
    return {"hour": hour, "day": day, "week": week, "month": month, "batch": batch}


def test_money_by_nairobi_day_week_and_month(site, sales):
    with site.app_context(), db.connection_context():
        money = reports.takings_by_period(NOW)
    today, week, month = money["today"], money["week"], money["month"]
    # The 23:30 sale yesterday is not today's money, but it is this week's.
    assert (today.mpesa, today.mpesa_count, today.vouchers, today.total) == (70, 2, 20, 90)
    assert (week.mpesa, week.vouchers, week.total) == (320, 40, 360)
    assert (month.mpesa, month.vouchers, month.total) == (1120, 40, 1160)


def test_chart_and_sales_by_package(site, sales):
    with site.app_context(), db.connection_context():
        bars = reports.daily_takings(NOW, 14)
        by_package = reports.sales_by_package(*reports.period_bounds(NOW)["month"])
    assert len(bars) == 14 and bars[-1].day.isoformat() == "2026-03-11"
    amounts = {b.day.isoformat(): (b.mpesa, b.vouchers) for b in bars if b.total}
    assert amounts == {"2026-02-28": (50, 0), "2026-03-02": (800, 0), "2026-03-09": (0, 20),
                       "2026-03-10": (250, 0), "2026-03-11": (70, 20)}
    svg = reports.chart_svg(bars, title="Money per day")
    assert svg.startswith("<svg") and svg.count('class="mpesa"') == 4
    assert svg.count('class="vouchers"') == 2 and "<script" not in svg
    assert "11 Mar: KES 90 (M-Pesa 70, Vouchers 20)" in svg
    assert [(r.package, r.mpesa_count, r.voucher_count, r.amount) for r in by_package] == [
        ("1 month", 1, 0, 800), ("1 week", 1, 0, 250), ("1 hour", 1, 2, 60),
        ("1 day", 1, 0, 50)]


def test_dashboard_page_today_excludes_last_night(site, router_sim):
    make_users(site)
    package = make_package(site, name_en="1 day", price=50, validity="1d")
    now = utcnow()
    local_now = now + timedelta(hours=3)
    last_night = datetime(local_now.year, local_now.month, local_now.day, 23, 30) \
        - timedelta(days=1, hours=3)
    with site.app_context(), db.connection_context():
        paid(package, 50, now - timedelta(seconds=5), paid_amount=50, receipt="TCB7XYZ1")
        paid(package, 50, last_night, paid_amount=50, receipt="TCB7XYZ2")
        paid(package, 50, now, status=Purchase.FAILED, phone="254711000111",
             desc="The balance is insufficient for the transaction.")
    owner = Browser(site)
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


def test_search_by_phone_receipt_and_code(site, sales):
    make_users(site)
    owner = Browser(site)
    owner.login()
    by_phone = visible_text(owner.text("/admin/search?q=0799 999 999"))
    assert "Request cancelled by user" in by_phone and "254799999999" in by_phone
    assert "TCB1" in visible_text(owner.text("/admin/search?q=tcb1"))
    with site.app_context(), db.connection_context():
        code = Voucher.select().where(Voucher.batch == sales["batch"].id).first().code
    found = visible_text(owner.text(f"/admin/search?q={code}"))
    assert code in found and "used" in found
    assert "Nothing found for 0700000000." in visible_text(owner.text("/admin/search?q=0700000000"))


def test_free_access_code_works_on_the_router_and_kick(site, router_sim):
    make_users(site)
    package = make_package(site)
    owner = Browser(site)
    owner.login()
    refused = owner.post("/admin/grant", {"package": str(package.id), "note": ""})
    assert refused.status_code == 400 and "Write why you give this access" in \
        refused.get_data(as_text=True)
    response = owner.post("/admin/grant", {"package": str(package.id),
                                           "note": "paid 0712345678, not connected"})
    html = response.get_data(as_text=True)
    assert "The code is on the router and works now." in html
    code = html.split('id="access-code">')[1].split("<")[0]
    with site.app_context(), db.connection_context():
        grant = Grant.get(Grant.username == code)
        assert grant.source == Grant.MANUAL and grant.created_by == "mama-njeri"
        assert AuditLog.select().where(AuditLog.action == "grant.manual").count() == 1
        # Free access is not money.
        assert reports.takings_by_period(utcnow())["today"].total == 0
    user = next(r for r in router_sim.rows("/ip/hotspot/user") if r["name"] == code)
    assert user["profile"] == package.profile_name

    # The customer logs in with it; the owner sees the device and kicks it.
    from portal.web import app_router

    with site.app_context():
        app_router(site).login(code, code, "10.5.50.23", "AA:BB:CC:DD:EE:01")
    page = owner.text("/admin/router")
    assert code in page and "10.5.50.23" in page
    active_id = router_sim.rows("/ip/hotspot/active")[0][".id"]
    kicked = owner.post(f"/admin/sessions/{active_id}/kick", {"user": code, "back": "/admin/router"},
                        follow_redirects=True)
    assert f"{code} was logged out." in kicked.get_data(as_text=True)
    assert router_sim.rows("/ip/hotspot/active") == []
    assert "Nobody is online." in owner.text("/admin/router")


def test_unreachable_router_says_so_and_the_page_still_works(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    instance = tmp_path / "instance"
    instance.mkdir()
    app = create_app(site_config(instance, closed_port, ROUTER_TIMEOUT=1.0))
    try:
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
    finally:
        gateway = app.extensions.get("kibanda.router")
        if gateway is not None:
            gateway.close()
        if not db.is_closed():
            db.close()
