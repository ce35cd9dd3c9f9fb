"""The agent's heartbeat: proof it is running, kept locally and sent upstream.

Every ``AGENT_HEARTBEAT_SECONDS`` the agent writes what it sees (router health, active
sessions, unsent outbox rows, the last successful sync, its version) into the Setting
``agent.heartbeat`` and, in the same transaction, a "heartbeat" outbox event. ``/healthz``
and the owner's dashboard read it back: no heartbeat for three intervals means the agent
has stopped. The sync engine writes ``sync.last_ok_at`` (ISO UTC) when the hub acknowledged
a batch; it is only read here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata

from ..ledger import events
from ..models import OutboxEvent, Setting, db

HEARTBEAT_KEY = "agent.heartbeat"
LAST_SYNC_KEY = "sync.last_ok_at"
DEFAULT_INTERVAL = 300
#: The agent counts as stopped after this many intervals without a heartbeat.
STALE_AFTER = 3


def interval_seconds(config) -> int:
    """The heartbeat interval from the settings (at least 1 second)."""
    try:
        return max(1, int(config.get("AGENT_HEARTBEAT_SECONDS") or DEFAULT_INTERVAL))
    except (TypeError, ValueError):
        return DEFAULT_INTERVAL


def agent_version() -> str:
    """The installed kibanda version."""
    try:
        return metadata.version("kibanda")
    except metadata.PackageNotFoundError:
        return "unknown"


def _parse_time(text) -> datetime | None:
    """An ISO time (``Z`` or an offset: converted to UTC) as naive UTC; None if unreadable."""
    try:
        when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when


def last_sync_at() -> datetime | None:
    """When the hub last acknowledged a batch (written by the sync engine), or None."""
    row = Setting.get_or_none(Setting.key == LAST_SYNC_KEY)
    return _parse_time(row.value) if row is not None else None


def last_heartbeat() -> dict | None:
    """The last heartbeat (its ``at`` a naive UTC datetime), or None."""
    row = Setting.get_or_none(Setting.key == HEARTBEAT_KEY)
    if row is None:
        return None
    try:
        beat = json.loads(row.value)
    except ValueError:
        return None
    beat["at"] = _parse_time(beat.get("at"))
    return beat if beat["at"] is not None else None


def due(now: datetime, interval: int) -> bool:
    """True when no heartbeat was written in the last ``interval`` seconds."""
    beat = last_heartbeat()
    return beat is None or (now - beat["at"]).total_seconds() >= interval


def record(now: datetime, *, router_ok: bool, active_sessions: int) -> dict:
    """Write the heartbeat locally and as an outbox event, in one transaction; returns it."""
    with db.atomic():
        data = {"router_ok": bool(router_ok), "active_sessions": int(active_sessions),
                "backlog": OutboxEvent.select().where(OutboxEvent.sent_at.is_null()).count(),
                "last_sync_at": events.iso(last_sync_at()), "agent_version": agent_version()}
        (Setting.insert(key=HEARTBEAT_KEY, value=json.dumps({**data, "at": events.iso(now)}),
                        encrypted=False, updated_at=now)
         .on_conflict_replace().execute())
        events.record_event(events.HEARTBEAT, now, **data)
    return data


@dataclass(frozen=True)
class AgentState:
    """Whether the agent is alive, as the health check and the dashboard say it."""

    last_at: datetime | None
    age_seconds: int | None
    stale: bool


def agent_state(now: datetime, interval: int) -> AgentState:
    """The last heartbeat's time and age; stale when none or older than 3 intervals."""
    beat = last_heartbeat()
    if beat is None:
        return AgentState(None, None, True)
    age = max(0, int((now - beat["at"]).total_seconds()))
    return AgentState(beat["at"], age, age > STALE_AFTER * interval)
