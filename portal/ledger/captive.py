"""The captive-portal state of one device (RFC 8908), for ``GET /api/captive``.

The device is the request's own address, which a phone cannot choose: the router's
hotspot host table gives its MAC and whether the router lets it through; the grant the
appliance holds for that MAC gives the time left (the appliance keeps expiry, never the
router's date strings). A router that cannot be asked means "captive": the login sheet
opens, which is the safe mistake.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import RouterError
from ..models import Grant
from ..timeutil import parse_duration
from .grants import grant_time_left
from .limits import normalise_mac

_YES = {"true", "yes"}


@dataclass(frozen=True)
class CaptiveState:
    """Whether the device is held at the portal, and for how long it is not."""

    captive: bool
    seconds_remaining: int | None = None


def captive_state(gateway, ip: str, now: datetime) -> CaptiveState:
    """The state of the device at ``ip`` (the request's source address)."""
    try:
        hosts = gateway.hotspot_hosts(ip) if ip else []
        authorized = [h for h in hosts if h.get("address") == ip
                      and str(h.get("authorized", "")).lower() in _YES]
        if not authorized:
            return CaptiveState(captive=True)
        mac = normalise_mac(authorized[0].get("mac-address"))
        grant = (Grant.select()
                 .where(Grant.login_mac == mac, Grant.expires_at > now,
                        Grant.router_state == Grant.ON_ROUTER)
                 .order_by(Grant.expires_at.desc()).first())
        if grant is not None:
            return CaptiveState(captive=False, seconds_remaining=grant_time_left(grant, now))
        # Logged in by the router's own page (a voucher typed there): the session's limit.
        for session in gateway.active_sessions("address,session-time-left"):
            if session.get("address") == ip and session.get("session-time-left"):
                try:
                    return CaptiveState(False, parse_duration(session["session-time-left"]))
                except ValueError:
                    break
        return CaptiveState(captive=False)
    except RouterError:
        return CaptiveState(captive=True)
