"""Settlement: the one place where an STK Push becomes money received and access granted.

The callback and the STK query both end in :func:`settle`. The first confirmation wins
by a conditional UPDATE checked by its row count; the Grant and the OutboxEvent are
written in the same transaction, so a crash can never leave money without access or
access without money. Everything that grants nothing is written to CallbackRecord.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from peewee import IntegrityError

from ..errors import MalformedCallback
from ..models import CallbackRecord, Grant, OutboxEvent, Purchase, db
from ..mpesa import parse_callback
from . import grants

log = logging.getLogger(__name__)

# Outcome words (also CallbackRecord.outcome).
SETTLED, LATE, DUPLICATE, FAILED, UNKNOWN, MISMATCH, MALFORMED = (
    "settled", "late", "duplicate", "failed", "unknown", "mismatch", "malformed")

#: A success may credit a purchase in these states; "review" waits for a person.
_CREDITABLE = (Purchase.PENDING, Purchase.FAILED, Purchase.EXPIRED)
#: How far back an unmatched callback is compared with pushes whose answer never came.
_ORPHAN_WINDOW = timedelta(minutes=15)
#: A push younger than this with no checkout id yet may still be waiting for its answer.
_PUSH_ANSWER_AGE = timedelta(minutes=2)
_PUSH_ANSWER_GRACE = 5.0


def _mismatch(purchase: Purchase, amount: int | None, phone: str | None) -> str:
    """Why a success cannot be credited to ``purchase`` ('' when it can)."""
    if amount is not None and amount < purchase.amount:
        return f"paid KES {amount}, price KES {purchase.amount}"
    if phone and str(phone) != purchase.phone:
        return f"paid from {phone}, push went to {purchase.phone}"
    return ""


def _fill_receipt(purchase: Purchase, receipt: str | None, now: datetime) -> None:
    """Record a receipt that arrives after the purchase was settled (query first)."""
    if not receipt or purchase.receipt:
        return
    with db.atomic():
        rows = (Purchase.update(receipt=receipt, updated_at=now)
                .where((Purchase.id == purchase.id) & Purchase.receipt.is_null()).execute())
        if rows:
            OutboxEvent.record("purchase.receipt", purchase_id=purchase.id, receipt=receipt,
                               checkout_request_id=purchase.checkout_request_id,
                               at=now.isoformat())


def _credit(purchase: Purchase, *, result_code, result_desc, receipt, amount, via,
            now) -> str:
    """Mark ``purchase`` paid and create its Grant, once; returns the outcome word."""
    with db.atomic():
        rows = (Purchase.update(
            status=Purchase.PAID, result_code=result_code if result_code is not None else 0,
            result_desc=result_desc, receipt=receipt, paid_amount=amount or purchase.amount,
            settled_at=now, updated_at=now, next_query_at=None)
            .where((Purchase.id == purchase.id) & Purchase.status.in_(_CREDITABLE))
            .execute())
        if rows != 1:
            return DUPLICATE
        grant = grants.create_grant(purchase.package, Grant.MPESA, now, purchase=purchase,
                                    login_mac=purchase.mac, login_ip=purchase.ip)
        OutboxEvent.record(
            "purchase.paid", purchase_id=purchase.id, phone=purchase.phone,
            amount=amount or purchase.amount, price=purchase.amount,
            package=purchase.package.name_en, receipt=receipt,
            checkout_request_id=purchase.checkout_request_id, via=via,
            grant_uuid=f"grant-{grant.id}", previous_status=purchase.status,
            paid_at=now.isoformat())
    return LATE if purchase.status != Purchase.PENDING else SETTLED


def settle(checkout_request_id: str, *, success: bool, result_code: int | None,
           result_desc: str, receipt: str | None = None, amount: int | None = None,
           phone: str | None = None, via: str, now: datetime) -> str:
    """Apply an M-Pesa answer (callback or query) to its purchase; returns the outcome word.

    settled / late (success after failed or expired) / duplicate / failed / unknown /
    mismatch (amount below the price, or another phone: set aside for review).
    """
    purchase = Purchase.get_or_none(Purchase.checkout_request_id == checkout_request_id)
    if purchase is None:
        return UNKNOWN
    if not success:
        # Only an open or expired attempt takes a failure; a paid one never goes back.
        rows = (Purchase.update(status=Purchase.FAILED, result_code=result_code,
                                result_desc=result_desc, settled_at=now, updated_at=now,
                                next_query_at=None)
                .where((Purchase.id == purchase.id)
                       & Purchase.status.in_((Purchase.PENDING, Purchase.EXPIRED)))
                .execute())
        return FAILED if rows else DUPLICATE
    problem = _mismatch(purchase, amount, phone)
    if problem:
        log.warning("purchase %s: success not credited: %s", purchase.id, problem)
        (Purchase.update(status=Purchase.REVIEW, result_code=result_code,
                         result_desc=f"review: {problem}", paid_amount=amount,
                         updated_at=now, next_query_at=None)
         .where((Purchase.id == purchase.id) & Purchase.status.in_(_CREDITABLE)).execute())
        return MISMATCH
    try:
        outcome = _credit(purchase, result_code=result_code, result_desc=result_desc,
                          receipt=receipt, amount=amount, via=via, now=now)
    except IntegrityError:
        # The unique receipt is the only constraint a valid credit can break: look which
        # row holds it rather than read the database's message.
        if not receipt or not Purchase.select().where(
                (Purchase.receipt == receipt) & (Purchase.id != purchase.id)).exists():
            raise
        # The receipt already belongs to another purchase: a replayed or forged notice.
        log.warning("purchase %s: receipt %s is already used", purchase.id, receipt)
        (Purchase.update(status=Purchase.REVIEW, updated_at=now, next_query_at=None,
                         result_desc=f"review: receipt {receipt} already used")
         .where((Purchase.id == purchase.id) & Purchase.status.in_(_CREDITABLE)).execute())
        return MISMATCH
    if outcome == DUPLICATE:
        _fill_receipt(Purchase.get_by_id(purchase.id), receipt, now)
    return outcome


def _push_in_flight(phone: str | None, now: datetime) -> bool:
    """Is a push still waiting for Daraja's answer (so its checkout id is not stored yet)?"""
    query = Purchase.select().where(
        (Purchase.status == Purchase.PUSHING) & (Purchase.created_at >= now - _PUSH_ANSWER_AGE))
    if phone:
        query = query.where(Purchase.phone == str(phone))
    return query.exists()


def _await_push_answer(checkout_request_id: str, phone: str | None, now: datetime) -> bool:
    """Give an in-flight push a moment to store its checkout id; True once it is there."""
    def stored() -> bool:
        return Purchase.select().where(
            Purchase.checkout_request_id == checkout_request_id).exists()

    # Look for a push in flight first, then for the stored answer: an answer that lands
    # between the two looks is then found by the second (the other order missed it).
    in_flight = _push_in_flight(phone, now)
    if stored():
        return True
    if not in_flight:
        return False
    deadline = time.monotonic() + _PUSH_ANSWER_GRACE
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if stored():
            return True
        if not _push_in_flight(phone, now):
            return stored()
    return False


def _orphan_for(phone: str | None, amount: int | None, now: datetime) -> Purchase | None:
    """A push whose answer never came back (no checkout id) that this callback may be for."""
    if not phone:
        return None
    query = Purchase.select().where(
        Purchase.checkout_request_id.is_null() & (Purchase.phone == str(phone))
        & Purchase.status.in_((Purchase.UNANSWERED, Purchase.REVIEW))
        & (Purchase.created_at >= now - _ORPHAN_WINDOW))
    if amount is not None:
        query = query.where(Purchase.amount <= amount)
    return query.order_by(Purchase.created_at.desc()).first()


def record_callback(raw_body: bytes, remote_addr: str, now: datetime
                    ) -> tuple[str, Purchase | None]:
    """Settle a Daraja callback and keep a record of it; returns (outcome, purchase)."""
    text = raw_body.decode("utf-8", errors="replace")
    try:
        result = parse_callback(raw_body)
    except MalformedCallback as exc:
        CallbackRecord.create(received_at=now, remote_addr=remote_addr or "",
                              outcome=MALFORMED, detail=exc.operator_message, body=text)
        return MALFORMED, None
    def _settle() -> str:
        return settle(result.checkout_request_id, success=result.success,
                      result_code=result.result_code, result_desc=result.result_desc,
                      receipt=result.receipt, amount=result.amount, phone=result.phone,
                      via="callback", now=now)

    outcome = _settle()
    if outcome == UNKNOWN and _await_push_answer(result.checkout_request_id, result.phone, now):
        # A quick customer's callback can beat Daraja's answer to our own push.
        outcome = _settle()
    purchase = Purchase.get_or_none(
        Purchase.checkout_request_id == result.checkout_request_id)
    detail = result.result_desc
    if outcome == UNKNOWN and result.success:
        orphan = _orphan_for(result.phone, result.amount, now)
        if orphan is not None:
            # Never credited automatically (no checkout id to prove it is ours), but put
            # in front of a person with everything needed to decide.
            (Purchase.update(status=Purchase.REVIEW, updated_at=now,
                             result_desc=f"review: callback {result.checkout_request_id} "
                                         f"receipt {result.receipt} may be this push")
             .where(Purchase.id == orphan.id).execute())
            detail = f"may belong to purchase {orphan.id} (push answer never came)"
    elif outcome == MISMATCH and purchase is not None:
        detail = purchase.result_desc or detail
    elif outcome == LATE:
        detail = f"late success credited: {result.result_desc}"
    CallbackRecord.create(received_at=now, remote_addr=remote_addr or "",
                          checkout_request_id=result.checkout_request_id,
                          result_code=result.result_code, outcome=outcome,
                          detail=detail or "", body=text)
    if outcome in (UNKNOWN, MISMATCH):
        log.warning("callback %s from %s: %s (%s)", result.checkout_request_id, remote_addr,
                    outcome, detail)
    return outcome, purchase


def record_refused(raw_body: bytes, remote_addr: str, now: datetime, reason: str) -> None:
    """Keep a callback that was refused before reading (e.g. from an unexpected address)."""
    CallbackRecord.create(received_at=now, remote_addr=remote_addr or "", outcome="refused",
                          detail=reason, body=raw_body.decode("utf-8", errors="replace"))
    log.warning("callback from %s refused: %s", remote_addr, reason)
