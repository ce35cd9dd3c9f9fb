"""The devices of a grant: each one that logs in holds one of the package's places.

Many phones use a random ("private") MAC address per network, and some change it: a
paid customer then comes back as a new device. Such an address is locally administered
(the second-least-significant bit of its first octet is set), so the success page can
tell the customer that the access code is their key. Logging in a new device with the
code or the M-Pesa receipt uses one place; when all are taken, a place whose device is
no longer online is handed over (the phone that changed its address left its old one
behind); only when every place is online is the new device refused. The owner sees the
devices and frees places on the admin grant page.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime

from ..errors import DeviceLimitReached, NotFound, RouterError
from ..models import AuditLog, Grant, GrantDevice, db

log = logging.getLogger(__name__)
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")


def is_random_mac(mac: str | None) -> bool:
    """A locally administered (random, "private") MAC: bit 1 of the first octet set."""
    text = str(mac or "").strip()
    if not _MAC.match(text):
        return False
    return bool(int(text[:2], 16) & 0x02)


def held(grant: Grant) -> list[GrantDevice]:
    """The devices holding a place of ``grant`` (oldest first)."""
    return list(GrantDevice.select().where((GrantDevice.grant == grant.id)
                                           & GrantDevice.freed_at.is_null())
                .order_by(GrantDevice.first_seen_at, GrantDevice.id))


def take_place(grant: Grant, mac: str, gateway, now: datetime) -> None:
    """Check that ``mac`` may log in with ``grant`` (its own place, a free one, or one
    whose device is offline: handed over); raises DeviceLimitReached otherwise."""
    mac = (mac or "").upper()
    places = held(grant)
    if not mac or any(d.mac == mac for d in places) or len(places) < grant.package.devices:
        return
    try:
        online = {str(row.get("mac-address", "")).upper()
                  for row in gateway.active_sessions([".id", "mac-address", "user"])
                  if row.get("user") == grant.username}
    except RouterError:
        online = {d.mac for d in places}  # unknown: hand nothing over
    idle = [d for d in places if d.mac not in online]
    if not idle:
        raise DeviceLimitReached(f"grant {grant.id}: {len(places)} devices online")
    (GrantDevice.update(freed_at=now, freed_by="replaced: offline")
     .where((GrantDevice.id == idle[0].id) & GrantDevice.freed_at.is_null()).execute())
    log.info("grant %s: place of %s handed to %s", grant.id, idle[0].mac, mac)


def record_login(grant: Grant, mac: str, ip: str, now: datetime) -> None:
    """Note that ``mac`` logged in with ``grant`` (it holds a place from now on)."""
    mac = (mac or "").upper()
    if not mac:
        return
    rows = (GrantDevice.update(last_seen_at=now, ip=ip or "")
            .where((GrantDevice.grant == grant.id) & (GrantDevice.mac == mac)
                   & GrantDevice.freed_at.is_null()).execute())
    if not rows:
        GrantDevice.create(grant=grant.id, mac=mac, ip=ip or "", first_seen_at=now,
                           last_seen_at=now)


def free(device_id, *, actor: str, gateway, now: datetime, address: str = "") -> GrantDevice:
    """The owner frees a device's place (and logs that device out if it is online)."""
    device = GrantDevice.get_or_none(GrantDevice.id == device_id)
    if device is None or device.freed_at is not None:
        raise NotFound(f"device {device_id}")
    grant = device.grant
    try:
        for row in gateway.active_sessions([".id", "mac-address", "user"]):
            if row.get("user") == grant.username and \
                    str(row.get("mac-address", "")).upper() == device.mac:
                gateway.kick(row[".id"])
    except RouterError as exc:
        log.warning("grant %s: could not log %s out: %s", grant.id, device.mac,
                    exc.operator_message)
    with db.atomic():
        GrantDevice.update(freed_at=now, freed_by=actor).where(
            GrantDevice.id == device.id).execute()
        AuditLog.create(at=now, actor=actor, action="grant.free_device", address=address,
                        detail=f"{grant.username}: {device.mac}")
    return GrantDevice.get_by_id(device.id)
