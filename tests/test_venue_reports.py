"""Sales reports: figures by Nairobi day/week/month, the chart and sales by package."""
from __future__ import annotations

from helpers import NOW

from portal.models import db
from portal.venue import reports


def test_money_by_nairobi_day_week_and_month(app, sales):
    with app.app_context(), db.connection_context():
        money = reports.takings_by_period(NOW)
    today, week, month = money["today"], money["week"], money["month"]
    # The 23:30 sale yesterday is not today's money, but it is this week's.
    assert (today.mpesa, today.mpesa_count, today.vouchers, today.total) == (70, 2, 20, 90)
    assert (week.mpesa, week.vouchers, week.total) == (320, 40, 360)
    assert (month.mpesa, month.vouchers, month.total) == (1120, 40, 1160)


def test_chart_and_sales_by_package(app, sales):
    with app.app_context(), db.connection_context():
        bars = reports.daily_takings(NOW, 14)
        by_package = reports.sales_by_package(*reports.period_bounds(NOW)["month"])
    assert len(bars) == 14 and bars[-1].day.isoformat() == "2026-03-11"
    amounts = {b.day.isoformat(): (b.mpesa, b.vouchers) for b in bars if b.total}
    assert amounts == {"2026-02-28": (50, 0), "2026-03-02": (800, 0), "2026-03-09": (0, 20),
                       "2026-03-10": (250, 0), "2026-03-11": (70, 20)}
    svg = reports.chart_svg(bars, title="Money per day")
    assert svg.startswith("<svg") and svg.count('class="mpesa"') == 4
    assert svg.count('class="vouchers"') == 2 and "<script" not in svg
    assert "11 Mar 2026: KES 90 (M-Pesa 70, Vouchers 20)" in svg
    assert [(r.package, r.mpesa_count, r.voucher_count, r.amount) for r in by_package] == [
        ("1 month", 1, 0, 800), ("1 week", 1, 0, 250), ("1 hour", 1, 2, 60),
        ("1 day", 1, 0, 50)]
    # A Swahili owner reads the Swahili month and the packages' Swahili names.
    swahili = reports.chart_svg(bars, title="Pesa kwa siku", mpesa_label="M-Pesa",
                                voucher_label="Vocha", lang="sw")
    assert "11 Mac 2026: KES 90 (M-Pesa 70, Vocha 20)" in swahili
    with app.app_context(), db.connection_context():
        by_package = reports.sales_by_package(*reports.period_bounds(NOW)["month"], "sw")
    assert [r.package for r in by_package] == ["Mwezi 1", "Wiki 1", "Saa 1", "Siku 1"]
