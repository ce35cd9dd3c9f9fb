"""Fair use: a capped package that slows down at its cap instead of cutting the customer off.

The cap itself is the router's: every grant of a capped package carries
``limit-bytes-total``, so the router ends the session at the cap even with the appliance
down. For a package with a ``fair_use_rate`` the agent then (``slow_down``, right after
``router_state.track`` read the usage) moves the hotspot user to the package's slow
profile (``<profile>-slow``) with no byte limit, and logs the customer's devices in
again: a session's rate is fixed at login, so only a new login gets the slow rate. The
grant stays slow until its own time ends (``grants.remove_expired``).

Crash-safe by order: the router first, then ``Grant.slowed_at`` and the ``grant.slowed``
event in one transaction (conditional: a grant is slowed once). A stop in between
leaves a grant whose router user is already slow and whose counters still show the cap,
so the next cycle does the (idempotent) router work again and records it then.
"""
from __future__ import annotations

import logging
from datetime import datetime

from ..errors import RouterTrap
from ..models import AuditLog, Grant, Package, db
from ..routeros.words import slow_profile_name
from . import devices, events, grants
from .router_state import BATCH, RouterSeen

log = logging.getLogger(__name__)

GRANT_SLOWED = "grant.slowed"


def is_fair_use(package: Package) -> bool:
    """True for a capped package that slows down at its cap instead of cutting off."""
    return bool(package.data_cap_bytes and package.fair_use_rate)


def _candidates(now: datetime):
    """Valid fair-use grants on the router not slowed yet (all of them are looked at:
    only the writes per cycle are bounded)."""
    return (Grant.select(Grant, Package).join(Package)
            .where((Package.fair_use_rate != "") & Package.data_cap_bytes.is_null(False)
                   & (Grant.router_state == Grant.ON_ROUTER) & (Grant.expires_at > now)
                   & Grant.slowed_at.is_null())
            .order_by(Grant.id))


def _devices_to_log_in(grant: Grant, seen: RouterSeen, gateway) -> list[tuple[str, str]]:
    """(ip, mac) of the grant's devices to log in again at the slow rate: those online now,
    and those the router just cut off that are still on the hotspot with the same MAC
    (never an address another phone took over since)."""
    found = {(str(row.get("address", "")), str(row.get("mac-address", "")).upper())
             for row in seen.sessions.get(grant.username, []) if row.get("address")}
    online_macs = {mac for _ip, mac in found}
    for device in devices.held(grant):
        if not device.ip or device.mac in online_macs:
            continue
        hosts = gateway.hotspot_hosts(device.ip)
        if any(str(h.get("mac-address", "")).upper() == device.mac for h in hosts):
            found.add((device.ip, device.mac))
    return sorted(found)


def slow_grant(grant: Grant, seen: RouterSeen, gateway, now: datetime) -> bool:
    """Move one grant past its cap to the slow profile and log its devices in again;
    True when this call recorded it (False: another process did). Raises RouterError."""
    package = grant.package
    gateway.ensure_profile(package)  # the slow profile too
    targets = _devices_to_log_in(grant, seen, gateway)
    gateway.update_user(grant.username, profile=slow_profile_name(package.profile_name),
                        limit_bytes_total=0)
    gateway.kick_user(grant.username)  # a session keeps the rate it logged in with
    for ip, mac in targets:
        try:
            grants.login_device(grant, gateway, ip, mac, now)
        except RouterTrap as exc:
            # The phone left meanwhile: it logs in again itself (access code or cookie).
            log.info("grant %s: %s not logged in again at the slow rate: %s",
                     grant.id, mac, exc.router_message or exc)
    with db.atomic():
        changed = (Grant.update(slowed_at=now)
                   .where((Grant.id == grant.id) & Grant.slowed_at.is_null()).execute())
        if changed:
            events.record_event(GRANT_SLOWED, now, grant_uuid=f"grant-{grant.id}",
                                package=package.name_en, data_cap=package.data_cap_bytes,
                                rate=package.fair_use_rate)
            AuditLog.write("agent", GRANT_SLOWED, f"{grant.username}: {package.name_en}",
                           at=now, code=grant.username, name=package.name_en,
                           name_sw=package.name_sw, rate=package.fair_use_rate)
    if changed:
        grant.slowed_at = now
        log.info("grant %s used its %s bytes: now at %s", grant.id, package.data_cap_bytes,
                 package.fair_use_rate)
    return bool(changed)


def slow_down(gateway, snapshot, now: datetime, limit: int = BATCH) -> int:
    """Slow every fair-use grant at or past its cap (from this cycle's read of the
    router); returns how many were slowed. Raises RouterError when the router cannot be
    reached (the rest wait for the next cycle)."""
    seen = RouterSeen(snapshot)
    slowed = 0
    for grant in list(_candidates(now)):
        if slowed >= limit:
            break
        if grant.username not in seen.users:
            continue  # reconcile puts it back first
        slow = slow_profile_name(grant.package.profile_name)
        used = max(seen.bytes_used(grant.username), grant.bytes_used or 0)
        if used < grants.data_cap_of(grant) \
                and seen.users[grant.username].get("profile") != slow:
            continue
        try:
            slowed += slow_grant(grant, seen, gateway, now)
        except RouterTrap as exc:
            # This user only (e.g. removed meanwhile): the others still get their turn.
            log.warning("grant %s: the router refused slowing it: %s", grant.id,
                        exc.operator_message)
    return slowed


def data_left(grant: Grant) -> int | None:
    """Bytes left under the grant's cap as the agent last read it (None: no cap); 0 once
    a fair-use grant is slowed (it has no cap left, only the slow speed)."""
    cap = grants.data_cap_of(grant)
    if not cap:
        return None
    if grant.slowed_at is not None:
        return 0
    return max(0, cap - (grant.bytes_used or 0))
