"""Time helpers: store naive UTC, show Africa/Nairobi, parse and print durations."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

try:
    from zoneinfo import ZoneInfo

    NAIROBI = ZoneInfo("Africa/Nairobi")
except Exception:  # noqa: BLE001 - no tz database on a slim image
    # Kenya has been UTC+3 without daylight saving since 1942, so a fixed offset is exact.
    NAIROBI = timezone(timedelta(hours=3), "EAT")


def utcnow() -> datetime:
    """Current time as a naive UTC datetime (how every timestamp is stored)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_nairobi(moment: datetime | None) -> datetime | None:
    """Convert a stored naive-UTC datetime to an aware Africa/Nairobi datetime."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc).astimezone(NAIROBI)


def format_local(moment: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    """Format a stored naive-UTC datetime in Nairobi time."""
    local = to_nairobi(moment)
    return local.strftime(fmt) if local else ""


def nairobi_timestamp(moment: datetime | None = None) -> str:
    """``YYYYMMDDHHmmss`` in Nairobi time, whatever the machine's zone (Daraja's Timestamp)."""
    aware = (moment.replace(tzinfo=timezone.utc) if moment and moment.tzinfo is None
             else moment) or datetime.now(timezone.utc)
    return aware.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")


def backoff_seconds(attempt: int, first: float, cap: float) -> float:
    """Exponential backoff: ``first`` seconds, doubling with each ``attempt`` (0, 1, 2 ...),
    never more than ``cap``. The one schedule for retries of every kind."""
    return min(cap, first * 2 ** min(max(0, int(attempt)), 32))


_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str | int) -> int:
    """Parse ``1h``, ``1d2h``, ``1w``, ``90m``, ``3600`` or ``HH:MM:SS`` into seconds."""
    if isinstance(text, int):
        return text
    value = str(text).strip().lower().replace(" ", "")
    if not value:
        raise ValueError("empty duration")
    if value.isdigit():
        return int(value)
    if ":" in value:
        parts = value.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a duration: {text!r}")
        h, m, s = (int(p) for p in parts)
        return h * 3600 + m * 60 + s
    match = _DURATION.match(value)
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(g) * mult for g, mult in zip(match.groups(), _UNITS.values()) if g)


def format_duration(seconds: int) -> str:
    """Seconds in RouterOS style: ``1w4d1h16m55s`` (``0s`` for zero)."""
    seconds = int(seconds)
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
