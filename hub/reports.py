"""What the operator sees: every site with last seen, backlog and money (Nairobi days)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import fn

from portal.timeutil import to_nairobi

from .ingest import money
from .models import Event, HubSite


@dataclass
class SiteRow:
    """One line of the operator's overview."""

    site: HubSite
    money_today: int
    money_month: int
    events: int


def nairobi_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Naive UTC starts of today and of this month, as days run in Africa/Nairobi."""
    local = to_nairobi(now)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    offset = local.utcoffset() or timedelta(0)
    return ((day - offset).replace(tzinfo=None), (month - offset).replace(tzinfo=None))


def site_overview(now: datetime) -> list[SiteRow]:
    """Every site, by slug, with today's and this month's money and its event count."""
    sites = list(HubSite.select().order_by(HubSite.slug))
    ids = [site.id for site in sites]
    if not ids:
        return []
    today, month = nairobi_bounds(now)
    end = now + timedelta(days=1)  # a site clock slightly ahead still counts today
    by_day, by_month = money(ids, today, end), money(ids, month, end)
    counts = {row.site_id: row.count for row in
              Event.select(Event.site, fn.COUNT(Event.id).alias("count"))
              .where(Event.site.in_(ids)).group_by(Event.site)}
    return [SiteRow(site, by_day.get(site.id, 0), by_month.get(site.id, 0),
                    int(counts.get(site.id, 0))) for site in sites]


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def site_json(row: SiteRow) -> dict:
    """One site as ``GET /v1/sites`` answers it."""
    return {"site": row.site.slug, "name": row.site.name,
            "last_seen_at": _iso(row.site.last_seen_at), "backlog": row.site.backlog,
            "router_ok": row.site.router_ok, "money_today": row.money_today,
            "money_month": row.money_month, "events": row.events}


def sales(site: HubSite, limit: int | None = None):
    """The site's sale events, newest first."""
    query = (Event.select().where((Event.site == site) & (Event.kind == "sale"))
             .order_by(Event.paid_at.desc(), Event.id.desc()))
    return query.limit(limit) if limit else query


def _text(value, limit: int = 60) -> str:
    # What a site sent is shown as text, bounded (and escaped by the templates).
    return "" if value is None else str(value)[:limit]


def sale_row(event: Event) -> dict:
    """A stored sale as the operator's pages and CSV show it."""
    import json

    data = json.loads(event.data)
    return {"paid_at": event.paid_at, "amount": event.amount, "event_id": event.event_id,
            "source": _text(data.get("source")), "package": _text(data.get("package")),
            "receipt": _text(data.get("receipt")), "reference": _text(data.get("reference")),
            "phone": _text(data.get("phone"))}
