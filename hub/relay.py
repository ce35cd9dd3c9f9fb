"""M-Pesa messages held for sites behind NAT: stored as Safaricom posts them, fetched and
acknowledged by the site's agent (no Flask here).

Safaricom gets its answer at once; the message waits in ``relay_message`` until the site
acknowledges it, and is re-delivered on every fetch until then (the site's settlement is
idempotent). Acknowledged messages are deleted after :data:`KEEP_ACKNOWLEDGED`.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from .errors import HubError
from .ingest import valid_slug
from .models import HubSite, RelayMessage

MAX_BODY = 64 * 1024
MAX_PATH = 300
MAX_FETCH = 100
MAX_WAIT = 25
#: Unacknowledged messages one site may have waiting: a flood of strangers' posts to a
#: site's relay URL stops here instead of filling the operator's disk.
MAX_WAITING = 10_000
KEEP_ACKNOWLEDGED = timedelta(days=7)
POLL_STEP = 0.25


def hold(slug: str, kind: str, rest: str, body: bytes, source_ip: str,
         now: datetime) -> RelayMessage:
    """Keep one message Safaricom posted for ``slug``; HubError 404 / 413 / 503."""
    site = HubSite.get_or_none(HubSite.slug == slug) if valid_slug(slug) else None
    if site is None:
        raise HubError(404, "unknown site")
    if len(body) > MAX_BODY:
        raise HubError(413, "body too large")
    if len(rest) > MAX_PATH:
        raise HubError(404, "path too long")
    waiting = (RelayMessage.select().where((RelayMessage.site == site)
                                           & RelayMessage.acknowledged_at.is_null())
               .limit(MAX_WAITING).count())
    if waiting >= MAX_WAITING:
        raise HubError(503, "too many messages waiting for this site")
    return RelayMessage.create(site=site, kind=kind, path=rest,
                               body=body.decode("utf-8", errors="replace"),
                               source_ip=(source_ip or "")[:45], received_at=now)


def waiting_messages(site: HubSite, after: int, limit: int = MAX_FETCH) -> list[RelayMessage]:
    """Unacknowledged messages with an id above ``after``, oldest first."""
    return list(RelayMessage.select()
                .where((RelayMessage.site == site) & (RelayMessage.id > after)
                       & RelayMessage.acknowledged_at.is_null())
                .order_by(RelayMessage.id).limit(limit))


def fetch(site: HubSite, after: int, wait: int, stop_at: float | None = None) -> list[dict]:
    """Messages for the site, waiting up to ``wait`` seconds for one to arrive (long-poll)."""
    deadline = stop_at if stop_at is not None else time.monotonic() + wait
    while True:
        messages = waiting_messages(site, after)
        if messages or time.monotonic() >= deadline:
            return [as_dict(message) for message in messages]
        time.sleep(POLL_STEP)


def as_dict(message: RelayMessage) -> dict:
    """A message as the contract sends it to the site."""
    return {"id": message.id, "kind": message.kind, "path": message.path, "body": message.body,
            "source_ip": message.source_ip,
            "received_at": message.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def acknowledge(site: HubSite, ids: list[int], now: datetime) -> list[int]:
    """Mark the site's messages done; returns the ids of the batch that are the site's."""
    (RelayMessage.update(acknowledged_at=now)
     .where((RelayMessage.site == site) & RelayMessage.id.in_(ids)
            & RelayMessage.acknowledged_at.is_null())
     .execute())
    mine = {row.id for row in RelayMessage.select(RelayMessage.id)
            .where((RelayMessage.site == site) & RelayMessage.id.in_(ids))}
    (RelayMessage.delete()
     .where((RelayMessage.site == site)
            & (RelayMessage.acknowledged_at < now - KEEP_ACKNOWLEDGED))
     .execute())
    return [message_id for message_id in ids if message_id in mine]


def parse_ids(payload: dict) -> list[int]:
    """The ``ids`` of an acknowledgement (1 to 100 whole numbers); HubError 400."""
    ids = payload.get("ids")
    if (not isinstance(ids, list) or not 1 <= len(ids) <= MAX_FETCH
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**62
                       for i in ids)):
        raise HubError(400, f"ids must be a list of 1 to {MAX_FETCH} message ids")
    return ids
