"""Sales at a glance: money by period, a revenue chart, sales by package, search, grants.

Money is counted when it came in: an M-Pesa purchase when it was settled as paid (its
``paid_amount``, else the price asked), a voucher when it was first used (its package's
price). Days, weeks (Monday first) and months are Nairobi's, stored times are UTC.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from markupsafe import Markup, escape
from peewee import JOIN, fn

from ..ledger.codes import normalise_code
from ..i18n import format_date, format_money, format_number
from ..models import Grant, Package, Purchase, Voucher
from ..timeutil import NAIROBI

CHART_DAYS = (14, 30)


@dataclass
class Money:
    """Takings in one period, split by where they came from."""

    mpesa: int = 0
    vouchers: int = 0
    mpesa_count: int = 0
    voucher_count: int = 0

    @property
    def total(self) -> int:
        """Both sources together, KES."""
        return self.mpesa + self.vouchers


@dataclass
class DayTakings:
    """One bar of the chart."""

    day: date
    mpesa: int = 0
    vouchers: int = 0

    @property
    def total(self) -> int:
        """Both sources together, KES."""
        return self.mpesa + self.vouchers


@dataclass
class PackageSales:
    """Sales of one package in a period."""

    package: str
    price: int
    mpesa_count: int = 0
    voucher_count: int = 0
    amount: int = 0
    extra: dict = field(default_factory=dict)


def _local(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc).astimezone(NAIROBI)


def _utc(local: datetime) -> datetime:
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def local_midnight(day: date) -> datetime:
    """Nairobi midnight starting ``day``, as naive UTC."""
    return _utc(datetime(day.year, day.month, day.day, tzinfo=NAIROBI))


def period_bounds(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """``today``, ``week`` (from Monday) and ``month`` as naive-UTC [start, end) pairs."""
    today = _local(now).date()
    end = local_midnight(today + timedelta(days=1))
    return {
        "today": (local_midnight(today), end),
        "week": (local_midnight(today - timedelta(days=today.weekday())), end),
        "month": (local_midnight(today.replace(day=1)), end),
    }


_PAID_AT = fn.COALESCE(Purchase.settled_at, Purchase.created_at)
_PAID_AMOUNT = fn.COALESCE(Purchase.paid_amount, Purchase.amount)


def _paid(start: datetime, end: datetime):
    return (Purchase.status == Purchase.PAID) & (_PAID_AT >= start) & (_PAID_AT < end)


def _used(start: datetime, end: datetime):
    return (Voucher.first_login_at >= start) & (Voucher.first_login_at < end)


def takings(start: datetime, end: datetime) -> Money:
    """Money taken in [start, end)."""
    mpesa, mpesa_count = (Purchase.select(fn.COALESCE(fn.SUM(_PAID_AMOUNT), 0),
                                          fn.COUNT(Purchase.id))
                          .where(_paid(start, end)).scalar(as_tuple=True))
    vouchers, voucher_count = (Voucher.select(fn.COALESCE(fn.SUM(Package.price), 0),
                                              fn.COUNT(Voucher.id))
                               .join(Package).where(_used(start, end)).scalar(as_tuple=True))
    return Money(int(mpesa), int(vouchers), int(mpesa_count), int(voucher_count))


def takings_by_period(now: datetime) -> dict[str, Money]:
    """Today, this week and this month."""
    return {name: takings(*bounds) for name, bounds in period_bounds(now).items()}


def daily_takings(now: datetime, days: int = 14) -> list[DayTakings]:
    """One entry per Nairobi day for the last ``days`` days, oldest first, today last."""
    today = _local(now).date()
    first = today - timedelta(days=days - 1)
    start, end = local_midnight(first), local_midnight(today + timedelta(days=1))
    bars = {first + timedelta(days=i): DayTakings(first + timedelta(days=i)) for i in range(days)}
    for at, amount in Purchase.select(_PAID_AT, _PAID_AMOUNT).where(_paid(start, end)).tuples():
        bars[_local(_as_datetime(at)).date()].mpesa += int(amount)
    for at, price in (Voucher.select(Voucher.first_login_at, Package.price).join(Package)
                      .where(_used(start, end)).tuples()):
        bars[_local(_as_datetime(at)).date()].vouchers += int(price)
    return list(bars.values())


def _as_datetime(value) -> datetime:
    # COALESCE() loses peewee's column type, so SQLite hands back the stored text.
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def sales_by_package(start: datetime, end: datetime, lang: str = "en") -> list[PackageSales]:
    """Count and money per package in [start, end), biggest first (names in ``lang``)."""
    rows: dict[int, PackageSales] = {}

    def row(package_id: int, name_en: str, name_sw: str, price: int) -> PackageSales:
        name = name_sw if lang == "sw" and name_sw else name_en
        return rows.setdefault(package_id, PackageSales(name, price))

    mpesa = (Purchase.select(Package.id, Package.name_en, Package.name_sw, Package.price,
                             fn.COUNT(Purchase.id), fn.SUM(_PAID_AMOUNT))
             .join(Package).where(_paid(start, end)).group_by(Package.id).tuples())
    for package_id, name_en, name_sw, price, count, amount in mpesa:
        entry = row(package_id, name_en, name_sw, price)
        entry.mpesa_count += count
        entry.amount += int(amount or 0)
    vouchers = (Voucher.select(Package.id, Package.name_en, Package.name_sw, Package.price,
                               fn.COUNT(Voucher.id))
                .join(Package).where(_used(start, end)).group_by(Package.id).tuples())
    for package_id, name_en, name_sw, price, count in vouchers:
        entry = row(package_id, name_en, name_sw, price)
        entry.voucher_count += count
        entry.amount += count * price
    return sorted(rows.values(), key=lambda r: (-r.amount, r.package))


def latest_purchases(limit: int = 20) -> list[Purchase]:
    """The newest M-Pesa attempts, whatever their status."""
    return list(Purchase.select(Purchase, Package).join(Package)
                .order_by(Purchase.created_at.desc(), Purchase.id.desc()).limit(limit))


def chart_svg(bars: list[DayTakings], *, mpesa_label: str = "M-Pesa",
              voucher_label: str = "Vouchers", title: str = "", lang: str = "en") -> Markup:
    """Stacked daily bars (M-Pesa below, vouchers above) as inline SVG; no JavaScript."""
    width, height, left, bottom, top = 320, 160, 34, 18, 10
    plot_w, plot_h = width - left - 4, height - bottom - top
    peak = max([b.total for b in bars] + [1])
    scale = _nice_ceiling(peak)
    step = plot_w / max(len(bars), 1)
    bar_w = max(step * 0.72, 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for fraction in (0, 0.5, 1):
        y = top + plot_h - plot_h * fraction
        parts.append(f'<line x1="{left}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'class="grid"/>')
        parts.append(f'<text x="{left - 3}" y="{y + 3:.1f}" class="axis" text-anchor="end">'
                     f"{_short_money(int(scale * fraction))}</text>")
    label_every = 1 if len(bars) <= 14 else 5
    for i, bar in enumerate(bars):
        x = left + i * step + (step - bar_w) / 2
        mpesa_h = plot_h * bar.mpesa / scale
        voucher_h = plot_h * bar.vouchers / scale
        y_mpesa = top + plot_h - mpesa_h
        tip = (f"{format_date(bar.day, lang)}: {format_money(bar.total, lang)} "
               f"({mpesa_label} {format_number(bar.mpesa, lang)}, "
               f"{voucher_label} {format_number(bar.vouchers, lang)})")
        parts.append(f'<g><title>{escape(tip)}</title>')
        if bar.mpesa:
            parts.append(f'<rect x="{x:.1f}" y="{y_mpesa:.1f}" width="{bar_w:.1f}" '
                         f'height="{mpesa_h:.1f}" class="mpesa"/>')
        if bar.vouchers:
            parts.append(f'<rect x="{x:.1f}" y="{y_mpesa - voucher_h:.1f}" width="{bar_w:.1f}" '
                         f'height="{voucher_h:.1f}" class="vouchers"/>')
        parts.append("</g>")
        if i % label_every == 0 or i == len(bars) - 1:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 5}" class="axis" '
                         f'text-anchor="middle">{bar.day.day}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_ceiling(value: int) -> int:
    """The next round figure at or above ``value`` (so the axis reads 500, 1k, 2k ...)."""
    magnitude = 10 ** max(len(str(int(value))) - 1, 0)
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _short_money(amount: int) -> str:
    if amount >= 1000:
        figure = amount / 1000
        return f"{figure:.0f}k" if figure.is_integer() else f"{figure:.1f}k"
    return str(amount)


@dataclass
class SearchResults:
    """What a search for a phone, receipt or code found."""

    query: str
    purchases: list = field(default_factory=list)
    vouchers: list = field(default_factory=list)
    grants: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing matched."""
        return not (self.purchases or self.vouchers or self.grants)


def phone_prefix(text: str) -> str | None:
    """The stored-number prefix (``2547...``) of a partly typed phone: "0700" -> "254700",
    "+254 71" -> "25471", "712 3" -> "2547123"; None when it is not the start of a number."""
    digits = re.sub(r"[\s+\-]", "", text)
    if not digits.isdigit() or len(digits) < 3:
        return None
    if digits.startswith("254"):
        return digits[:12]
    if digits.startswith("0"):
        return ("254" + digits[1:])[:12]
    if digits[0] in "71":
        return ("254" + digits)[:12]
    return None


def search(text: str) -> SearchResults:
    """Find purchases by phone or M-Pesa receipt, vouchers by code, grants by access code.

    Partial input finds what starts with it: "0700" finds every 0700 xxx xxx number, the
    first letters of a receipt or a code find it (at least 3 characters)."""
    query = " ".join((text or "").split())[:40]
    results = SearchResults(query)
    if len(query) < 3:
        return results
    compact = normalise_code(query)
    conditions = Purchase.receipt.startswith(compact) if compact else None
    prefix = phone_prefix(query)
    if prefix:
        by_phone = Purchase.phone.startswith(prefix)
        conditions = by_phone if conditions is None else conditions | by_phone
    if conditions is not None:
        results.purchases = list(Purchase.select(Purchase, Package).join(Package)
                                 .where(conditions)
                                 .order_by(Purchase.created_at.desc()).limit(50))
    if not compact:
        return results
    results.vouchers = list(Voucher.select(Voucher, Package).join(Package)
                            .where(Voucher.code.startswith(compact))
                            .order_by(Voucher.code).limit(50))
    grant_match = Grant.username.startswith(compact)
    if results.purchases:
        grant_match |= Grant.purchase.in_([p.id for p in results.purchases])
        topped_up = [p.topup_of for p in results.purchases if p.topup_of]
        if topped_up:  # a top-up's receipt or phone finds the grant it added to
            grant_match |= Grant.id.in_(topped_up)
    results.grants = list(Grant.select(Grant, Package).join(Package, JOIN.INNER)
                          .where(grant_match).order_by(Grant.created_at.desc()).limit(50))
    return results
