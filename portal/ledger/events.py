"""Outbox events in the hub's words (the sync contract's kinds and payloads).

Each is written by the caller inside the transaction of the change it describes, with
``created_at`` set to the time the change happened (the agent's ``now``, not the wall
clock), so the event and its change are committed together or not at all.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

from ..errors import InvalidPhone
from ..models import OutboxEvent
from ..phone import normalise_phone

SALE, VOUCHER_BATCH, VOUCHER_USED = "sale", "voucher.batch", "voucher.used"
GRANT_EXPIRED, HEARTBEAT = "grant.expired", "heartbeat"
#: The sources a "sale" may name (c2b: a PayBill/Till payment matched to a customer).
SALE_SOURCES = ("mpesa", "voucher", "manual", "c2b")


def iso(when: datetime | None) -> str | None:
    """Naive UTC as ISO 8601 with a Z (the contract's times), None stays None."""
    return None if when is None else when.replace(microsecond=0).isoformat() + "Z"


def record_event(kind: str, now: datetime, **data) -> OutboxEvent:
    """Write one outbox event that happened at ``now``; call inside the change's transaction."""
    return OutboxEvent.create(kind=kind, created_at=now,
                              payload=json.dumps(data, sort_keys=True, default=str))


def masked_phone(phone: str | None) -> str | None:
    """``07xx xxx 123``: enough for an operator to match a complaint, not to call."""
    if not phone:
        return None
    try:
        local = "0" + normalise_phone(phone)[3:]
    except InvalidPhone:
        return None
    return f"{local[:2]}xx xxx {local[-3:]}"


def code_hash(code: str) -> str:
    """A voucher code as the hub sees it: sha256 hex (the code itself still opens the internet)."""
    return hashlib.sha256(str(code).encode()).hexdigest()


def record_sale(now: datetime, *, amount: int, source: str, package: str,
                receipt: str | None = None, reference: str | None = None,
                phone: str | None = None, topup: bool = False) -> OutboxEvent:
    """The one "sale" event of a sale (written with the sale's Grant, or with the top-up
    of an existing grant: ``topup`` true)."""
    if source not in SALE_SOURCES:
        raise ValueError(f"sale source {source!r} is not one of {SALE_SOURCES}")
    return record_event(SALE, now, amount=int(amount), source=source, package=package,
                        receipt=receipt, reference=reference, phone=masked_phone(phone),
                        paid_at=iso(now), **({"topup": True} if topup else {}))
