"""Where the site's upstream sync stands, kept in Setting rows so it survives restarts.

The agent's sync step (``agent/sync.py``) writes it; ``/healthz``, the owner's dashboard
and the heartbeat read it. ``sync.stopped`` holds the hub's refusal (a 4xx other than
408/429): nothing is sent until someone fixes the cause and runs ``kibanda enroll`` again
(which clears it). Nothing here is ever a reason to delete an unsent event.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .models import OutboxEvent, Setting
from .timeutil import utcnow

LAST_OK_AT = "sync.last_ok_at"  # ISO UTC of the last acknowledged batch (the heartbeat reads it)
FAILURES = "sync.failures"  # failed attempts in a row (the backoff's exponent)
RETRY_AT = "sync.retry_at"  # ISO UTC: no attempt before this
LAST_ERROR = "sync.last_error"  # why the last attempt failed (retrying)
STOPPED = "sync.stopped"  # the hub refused the queue: shown as an error until re-enrolled
KEYS = (LAST_OK_AT, FAILURES, RETRY_AT, LAST_ERROR, STOPPED)

NOT_ENROLLED, OK, RETRYING, STOPPED_STATE = "not enrolled", "ok", "retrying", "stopped"


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with ``Z``, as the contract writes times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> datetime | None:
    """A time written by :func:`iso` (naive UTC), or None."""
    try:
        return datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


@dataclass
class SyncStatus:
    """What the owner and /healthz see about sending sales upstream."""

    state: str
    unsent: int
    last_ok_at: datetime | None
    retry_at: datetime | None
    error: str

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {"state": self.state, "unsent": self.unsent,
                "last_ok_at": iso(self.last_ok_at) if self.last_ok_at else None,
                "retry_at": iso(self.retry_at) if self.retry_at else None,
                "error": self.error or None}


def read_state() -> dict[str, str]:
    """The raw sync Setting rows."""
    return {row.key: row.value for row in Setting.select().where(Setting.key.in_(KEYS))}


def write_state(**values: str | None) -> None:
    """Set (or, with None, delete) sync Setting rows, e.g. ``write_state(**{STOPPED: None})``."""
    now = utcnow()
    for key, value in values.items():
        if value is None:
            Setting.delete().where(Setting.key == key).execute()
        else:
            (Setting.insert(key=key, value=value, encrypted=False, updated_at=now)
             .on_conflict_replace().execute())


def enrolled(config) -> bool:
    """True when the site has a hub URL and a key id (``kibanda enroll`` sets both)."""
    return bool(config.get("UPSTREAM_URL") and config.get("UPSTREAM_KEY_ID"))


def relay_base(config) -> str:
    """``{hub}/relay/{site}/mpesa`` when M-Pesa must post through the hub (``MPESA_RELAY``
    on and a hub configured), else "". Append ``/callback/<secret>/<reference>`` for STK,
    ``/c2b/confirmation`` and ``/c2b/validation`` for the C2B URLs to register."""
    hub = str(config.get("UPSTREAM_URL") or "").rstrip("/")
    if not (config.get("MPESA_RELAY") and hub and config.get("SITE_ID")):
        return ""
    return f"{hub}/relay/{config['SITE_ID']}/mpesa"


def sync_status(config) -> SyncStatus:
    """Where sending sales upstream stands now."""
    state = read_state()
    unsent = OutboxEvent.select().where(OutboxEvent.sent_at.is_null()).count()
    if not enrolled(config):
        name = NOT_ENROLLED
    elif state.get(STOPPED):
        name = STOPPED_STATE
    elif state.get(LAST_ERROR):
        name = RETRYING
    else:
        name = OK
    return SyncStatus(name, unsent, parse_iso(state.get(LAST_OK_AT)),
                      parse_iso(state.get(RETRY_AT)),
                      state.get(STOPPED) or state.get(LAST_ERROR) or "")
