"""Enrollment, signed requests and storing each event once (no Flask here).

Every rule that must hold across several hub processes is a unique index plus a
conditional write: an enrollment token is spent by ``UPDATE ... WHERE used_at IS NULL``,
a signature is remembered by ``INSERT ... ON CONFLICT DO NOTHING`` (a second insert of the
same one is a replay), and events are inserted the same way on (site, event id).
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from datetime import datetime, timedelta, timezone

from peewee import fn

from portal import signing
from portal.timeutil import utcnow

from .errors import HubError
from .models import TOKEN_LIFETIME, EnrollmentToken, Event, HubSite, SeenSignature, db, new_token

SLUG = re.compile(r"[a-z0-9-]{1,40}")
EVENT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
KIND = re.compile(r"[a-z0-9_.-]{1,40}")
MAX_EVENTS = 500
#: Signatures are remembered this long: twice the timestamp window either way.
REPLAY_MEMORY = timedelta(seconds=2 * signing.TIMESTAMP_WINDOW)
SALE_SOURCES = ("mpesa", "voucher", "manual", "c2b")


# --- enrollment ----------------------------------------------------------------------------

def valid_slug(slug: str) -> bool:
    """True for a site id the contract allows: ``[a-z0-9-]{1,40}``."""
    return bool(SLUG.fullmatch(slug or ""))


def make_token(slug: str, name: str = "", now: datetime | None = None) -> str:
    """A one-time enrollment token for ``slug`` (valid 7 days); the site row is made too."""
    if not valid_slug(slug):
        raise HubError(400, "a site id is 1 to 40 of a-z, 0-9 and '-'")
    now = now or utcnow()
    token = new_token()
    with db.atomic():
        HubSite.insert(slug=slug, name=name[:120]).on_conflict_ignore().execute()
        if name:
            HubSite.update(name=name[:120]).where(HubSite.slug == slug).execute()
        EnrollmentToken.create(token_hash=_hash(token), site_slug=slug, name=name[:120],
                               expires_at=now + TOKEN_LIFETIME, created_at=now)
    return token


def enroll(body: bytes, now: datetime) -> dict:
    """Spend a token and register the site's public key; returns ``{"site", "key_id"}``."""
    payload = _json_object(body)
    token, public, name = (payload.get("token"), payload.get("public_key"),
                           payload.get("name", ""))
    if not isinstance(token, str) or not token or len(token) > 100:
        raise HubError(400, "token is missing")
    if not isinstance(name, str) or len(name) > 120:
        raise HubError(400, "name must be text of at most 120 characters")
    try:
        raw = signing.decode_public_key(public if isinstance(public, str) else "")
    except ValueError as exc:
        raise HubError(400, str(exc)) from exc
    key_id = signing.key_id(raw)
    with db.atomic():
        spent = (EnrollmentToken.update(used_at=now)
                 .where((EnrollmentToken.token_hash == _hash(token))
                        & EnrollmentToken.used_at.is_null()
                        & (EnrollmentToken.expires_at > now))
                 .execute())
        if spent != 1:
            raise HubError(401, "invalid or used token")
        row = EnrollmentToken.get(EnrollmentToken.token_hash == _hash(token))
        site = HubSite.get(HubSite.slug == row.site_slug)
        # Re-enrolling with a new token replaces the key: the old one stops working now.
        HubSite.update(public_key=base64.b64encode(raw).decode("ascii"), key_id=key_id,
                       name=row.name or site.name or name.strip()[:120], enrolled_at=now,
                       last_seen_at=now).where(HubSite.id == site.id).execute()
    return {"site": site.slug, "key_id": key_id}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- signed requests -----------------------------------------------------------------------

def authenticate(slug: str, method: str, path: str, headers, body: bytes,
                 now: datetime) -> HubSite:
    """The site that signed this request, or HubError 401 / 409 (contract order).

    The signature is remembered only once it verified, so nobody can poison the replay
    memory with a signature they made up.
    """
    site_header = headers.get(signing.HEADER_SITE, "")
    key_header = headers.get(signing.HEADER_KEY, "")
    timestamp = headers.get(signing.HEADER_TIMESTAMP, "")
    signature = headers.get(signing.HEADER_SIGNATURE, "")
    site = None
    if valid_slug(slug) and site_header == slug:
        site = HubSite.get_or_none(HubSite.slug == slug)
    if site is None or not site.key_id or key_header != site.key_id:
        raise HubError(401, "unknown key")
    if not signing.timestamp_fresh(timestamp, unix_seconds(now)):
        raise HubError(401, "stale timestamp")
    if len(signature) > 100 or not signing.verify(base64.b64decode(site.public_key), method,
                                                  path, timestamp, body, signature):
        raise HubError(401, "bad signature")
    remember_signature(signature, now)
    HubSite.update(last_seen_at=now).where(HubSite.id == site.id).execute()
    return site


def remember_signature(signature: str, now: datetime) -> None:
    """Record a verified signature; HubError 409 when it was seen before (a replay)."""
    cursor = db.execute(SeenSignature.insert(signature=signature, seen_at=now)
                        .on_conflict_ignore())
    if cursor.rowcount != 1:
        raise HubError(409, "replayed")
    # Forget old ones now and then (a timestamp that old is refused as stale anyway).
    if random.random() < 0.02:
        SeenSignature.delete().where(SeenSignature.seen_at < now - REPLAY_MEMORY).execute()


def unix_seconds(naive_utc: datetime) -> float:
    """Unix seconds of a naive UTC time."""
    return (naive_utc - datetime(1970, 1, 1)).total_seconds()


# --- events --------------------------------------------------------------------------------

def store_events(site: HubSite, body: bytes, now: datetime) -> list[str]:
    """Store a batch (each event once) and return every id of it the hub now holds."""
    payload = _json_object(body)
    events = payload.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        raise HubError(400, f"events must be a list of 1 to {MAX_EVENTS} events")
    rows = [_event_row(site, event, index, now) for index, event in enumerate(events)]
    with db.atomic():
        insert_events(rows)
        _note_heartbeat(site, rows)
    seen = set()
    return [row["event_id"] for row in rows
            if not (row["event_id"] in seen or seen.add(row["event_id"]))]


_EVENT_COLUMNS = ("site_id", "event_id", "seq", "kind", "at", "data", "amount", "paid_at",
                  "received_at")


def insert_events(rows: list[dict]) -> None:
    """Insert rows, skipping any (site, event id) already held.

    ``INSERT ... ON CONFLICT (site_id, event_id) DO NOTHING``, which SQLite and PostgreSQL
    both speak: a concurrent insert of the same event by another hub process is neither a
    duplicate nor an error. One prepared statement run per row (executemany) instead of
    peewee building a 500-row statement, which cost more than the database's own work.
    """
    marks = ", ".join([db.param] * len(_EVENT_COLUMNS))
    sql = (f'INSERT INTO "event" ({", ".join(_EVENT_COLUMNS)}) VALUES ({marks}) '
           f"ON CONFLICT (site_id, event_id) DO NOTHING")
    values = [(row["site"], row["event_id"], row["seq"], row["kind"], row["at"], row["data"],
               row["amount"], row["paid_at"], row["received_at"]) for row in rows]
    db.cursor().executemany(sql, values)


def _event_row(site: HubSite, event, index: int, now: datetime) -> dict:
    where = f"events[{index}]"
    if not isinstance(event, dict):
        raise HubError(400, f"{where} is not an object")
    event_id, seq, kind = event.get("id"), event.get("seq"), event.get("kind")
    data = event.get("data")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise HubError(400, f"{where}.id must be the outbox uuid")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**62:
        raise HubError(400, f"{where}.seq must be a whole number")
    if not isinstance(kind, str) or not KIND.fullmatch(kind):
        raise HubError(400, f"{where}.kind is not a kind")
    if not isinstance(data, dict):
        raise HubError(400, f"{where}.data must be an object")
    at = parse_utc(event.get("at"))
    if at is None:
        raise HubError(400, f"{where}.at must be ISO 8601 UTC")
    row = {"site": site.id, "event_id": event_id, "seq": seq, "kind": kind, "at": at,
           "data": json.dumps(data, sort_keys=True), "amount": None, "paid_at": None,
           "received_at": now}
    if kind == "sale":
        amount = data.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount < 10**9:
            raise HubError(400, f"{where}.data.amount must be whole KES")
        if data.get("source") not in SALE_SOURCES:
            raise HubError(400, f"{where}.data.source must be one of {', '.join(SALE_SOURCES)}")
        row["amount"] = amount
        row["paid_at"] = parse_utc(data.get("paid_at")) or at
    return row


def _note_heartbeat(site: HubSite, rows: list[dict]) -> None:
    """Keep the newest heartbeat's figures on the site row (a late one never wins)."""
    beats = [row for row in rows if row["kind"] == "heartbeat"]
    if not beats:
        return
    newest = max(beats, key=lambda row: row["at"])
    data = json.loads(newest["data"])
    fields = {"heartbeat_at": newest["at"]}
    for name, kind in (("backlog", int), ("active_sessions", int), ("router_ok", bool)):
        value = data.get(name)
        if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            fields[name] = value
    for name in ("last_sync_at", "agent_version"):
        if isinstance(data.get(name), str):
            fields[name] = data[name][:40]
    (HubSite.update(**fields)
     .where((HubSite.id == site.id)
            & (HubSite.heartbeat_at.is_null() | (HubSite.heartbeat_at < newest["at"])))
     .execute())


def parse_utc(text) -> datetime | None:
    """Naive UTC from ISO 8601 with ``Z`` or an offset (``None`` when it is not one)."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _json_object(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HubError(400, "body is not JSON") from exc
    if not isinstance(payload, dict):
        raise HubError(400, "body must be a JSON object")
    return payload


def money(site_ids: list[int], start: datetime, end: datetime) -> dict[int, int]:
    """Sale amounts per site with ``start <= paid_at < end`` (naive UTC bounds)."""
    query = (Event.select(Event.site, fn.SUM(Event.amount).alias("total"))
             .where(Event.site.in_(site_ids) & (Event.kind == "sale")
                    & (Event.paid_at >= start) & (Event.paid_at < end))
             .group_by(Event.site))
    return {row.site_id: int(row.total or 0) for row in query}

