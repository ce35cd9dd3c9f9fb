"""RouterOS words: the hotspot menus' paths, the router's messages, and values as text.

Values go to the router as its own strings (``yes``/``no``, ``1d2h``) and are compared
as the router means them (durations by seconds, booleans by truth).
"""
from __future__ import annotations

from ..timeutil import format_duration, parse_duration

USER = "/ip/hotspot/user"
PROFILE = "/ip/hotspot/user/profile"
ACTIVE = "/ip/hotspot/active"
HOST = "/ip/hotspot/host"
WALLED_GARDEN_IP = "/ip/hotspot/walled-garden/ip"

DUPLICATE_USER = "failure: already have user with this name for this server"
NO_SUCH_ITEM = "no such item"
#: A mac cookie longer than this outlives any sensible package; the agent removes expired
#: users anyway, so the cap only keeps absurd validities off the router.
MAX_MAC_COOKIE_SECONDS = 30 * 86400
_TRUE_WORDS = {"true", "yes"}
#: A fair-use package's second profile (the slow speed after its data cap) is named
#: after its own: ``kb-1-gb`` and ``kb-1-gb-slow``.
SLOW_SUFFIX = "-slow"


def slow_profile_name(profile_name: str) -> str:
    """The name of a package's slow (fair-use) profile."""
    return f"{profile_name}{SLOW_SUFFIX}"


def word(name: str, value) -> str:
    """An attribute word; booleans in the router's words, everything else as str."""
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return f"={name}={value}"


def user_words(name, password, profile, limit_uptime=None, limit_bytes_total=None,
               comment="", disabled=False) -> list[str]:
    """The attribute words of a hotspot user (``disabled``: a windowed grant between
    its windows)."""
    words = [word("name", name), word("password", password), word("profile", profile)]
    if limit_uptime:
        words.append(word("limit-uptime", format_duration(int(limit_uptime))))
    if limit_bytes_total:
        words.append(word("limit-bytes-total", int(limit_bytes_total)))
    if comment:
        words.append(word("comment", comment))
    if disabled:
        words.append(word("disabled", "yes"))
    return words


def router_value(name: str, value) -> str:
    """A keyword argument of update_user as the router's text (None clears it)."""
    if name == "limit-uptime":
        return format_duration(int(value)) if value else "0"
    if name.startswith("limit-bytes"):
        return str(int(value)) if value else "0"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def same_value(name: str, current: str | None, wanted: str) -> bool:
    """Compare as the router means it: durations by seconds, booleans by truth."""
    current = current or ""
    if current == wanted:
        return True
    if name in ("add-mac-cookie", "disabled"):
        return (current in _TRUE_WORDS) == (wanted in _TRUE_WORDS)
    if name in ("mac-cookie-timeout", "limit-uptime") or name.endswith("-timeout"):
        try:
            return parse_duration(current or "0") == parse_duration(wanted or "0")
        except ValueError:
            return False
    if name.startswith("limit-bytes"):
        return (current or "0") == (wanted or "0")
    return False


def as_int(value) -> int:
    """A router number as an int (0 when empty or not a number)."""
    try:
        return int(str(value).strip() or 0)
    except ValueError:
        return 0
