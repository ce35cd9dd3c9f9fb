"""Settlement: the one place where an STK Push becomes money received and access granted.

The callback and the STK query both end in :func:`settle`. The first confirmation wins
by a conditional UPDATE checked by its row count; the Grant and its "sale" event are
written in the same transaction, so a crash can never leave money without access or
access without money. Everything that grants nothing is written to CallbackRecord.

A callback is evidence, not proof. A success that carries its receipt, an amount not
below the price and the phone the push went to is credited; one that lacks any of them,
or does not match, is confirmed by an STK query first (the query speaks for the push we
sent, its amount and phone included), and it never blocks a later genuine confirmation.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from peewee import IntegrityError

from ..errors import MalformedCallback
from ..models import CallbackRecord, Grant, Purchase, db
from ..mpesa import CallbackResult, parse_callback
from . import events, grants

log = logging.getLogger(__name__)

# Outcome words (also CallbackRecord.outcome). "unconfirmed": a success the query must
# confirm before anything is granted.
SETTLED, LATE, DUPLICATE, FAILED, UNKNOWN, MISMATCH, MALFORMED, UNCONFIRMED = (
    "settled", "late", "duplicate", "failed", "unknown", "mismatch", "malformed",
    "unconfirmed")

#: A success may credit a purchase in these states; "review" waits for a person, except
#: that M-Pesa's own final word (a query) may still credit it.
_CREDITABLE = (Purchase.PENDING, Purchase.FAILED, Purchase.EXPIRED)
#: Paths that bring a payment with its receipt from outside the STK exchange: a C2B
#: confirmation (site URL or hub relay) and a Pull Transactions record (ledger/c2b.py).
_RECEIPT_PATHS = ("c2b", "pull")
#: How far back a callback with no reference is compared with pushes whose answer never came.
_ORPHAN_WINDOW = timedelta(minutes=15)
#: States in which a purchase may still learn its CheckoutRequestID from its callback.
_WITHOUT_ANSWER = (Purchase.PUSHING, Purchase.UNANSWERED, Purchase.REVIEW)


def _mismatch(purchase: Purchase, amount: int | None, phone: str | None) -> str:
    """Why a callback's success does not match ``purchase`` ('' when it does)."""
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
            # The sale went upstream without it (a query confirmed it first): its
            # reference, the CheckoutRequestID, names that sale.
            events.record_event("purchase.receipt", now,
                                checkout_request_id=purchase.checkout_request_id,
                                receipt=receipt)


def _credit(purchase: Purchase, *, result_code, result_desc, receipt, amount, via,
            now) -> str:
    """Mark ``purchase`` paid and create its Grant, once; returns the outcome word."""
    creditable = _CREDITABLE + ((Purchase.REVIEW,) if via == "query" else ())
    if via in _RECEIPT_PATHS:
        # M-Pesa's own record of a payment with its receipt: it may also finish a push
        # that never got its answer, or one a person was asked to look at.
        creditable = _CREDITABLE + Purchase.OPEN + (Purchase.REVIEW,)
    with db.atomic():
        rows = (Purchase.update(
            status=Purchase.PAID, result_code=result_code if result_code is not None else 0,
            result_desc=result_desc, receipt=receipt, paid_amount=amount or purchase.amount,
            settled_at=now, updated_at=now, next_query_at=None)
            .where((Purchase.id == purchase.id) & Purchase.status.in_(creditable))
            .execute())
        if rows != 1:
            return DUPLICATE
        purchase.receipt = receipt or purchase.receipt  # the sale event carries it
        grants.create_grant(purchase.package, Grant.MPESA, now, purchase=purchase,
                            login_mac=purchase.mac, login_ip=purchase.ip,
                            amount=amount or purchase.amount,
                            sale_source="c2b" if via in _RECEIPT_PATHS else None)
    return LATE if purchase.status != Purchase.PENDING else SETTLED


def credit(purchase: Purchase, *, receipt: str, amount: int, result_desc: str, via: str,
           now: datetime) -> str:
    """Credit ``purchase`` with a payment found by C2B or Pull Transactions (ledger/c2b.py):
    the same conditional UPDATE, Grant and outbox event as an STK success."""
    return _credit(purchase, result_code=0, result_desc=result_desc, receipt=receipt,
                   amount=amount, via=via, now=now)


def fill_receipt(purchase: Purchase, receipt: str, now: datetime) -> None:
    """Give a purchase credited without its receipt (by query) the receipt M-Pesa shows."""
    _fill_receipt(purchase, receipt, now)


def _confirm_by_query(purchase: Purchase, now: datetime) -> None:
    """Have the next STK query about ``purchase`` asked now (the agent or its page asks)."""
    (Purchase.update(next_query_at=now, updated_at=now)
     .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PENDING)).execute())


def settle(checkout_request_id: str, *, success: bool, result_code: int | None,
           result_desc: str, receipt: str | None = None, amount: int | None = None,
           phone: str | None = None, via: str, now: datetime) -> str:
    """Apply an M-Pesa answer (callback or query) to its purchase; returns the outcome word.

    settled / late (success after failed or expired) / duplicate / failed / unknown /
    unconfirmed (a callback's success without its receipt, amount and phone: the query
    confirms it) / mismatch (a callback's amount below the price, another phone, or a
    receipt another purchase already has: the query decides; nothing is blocked).
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
    if via == "callback":
        problem = _mismatch(purchase, amount, phone)
        if problem:
            log.warning("purchase %s: callback success not credited: %s", purchase.id, problem)
            _confirm_by_query(purchase, now)
            return MISMATCH
        if not (receipt and amount is not None and phone):
            _confirm_by_query(purchase, now)
            return UNCONFIRMED
        if Purchase.select().where((Purchase.receipt == receipt)
                                   & (Purchase.id != purchase.id)).exists():
            log.warning("purchase %s: receipt %s is already another purchase's",
                        purchase.id, receipt)
            _confirm_by_query(purchase, now)
            return MISMATCH
    try:
        outcome = _credit(purchase, result_code=result_code, result_desc=result_desc,
                          receipt=receipt, amount=amount, via=via, now=now)
    except IntegrityError:
        # The unique receipt is the only constraint a valid credit can break (another
        # purchase took it meanwhile): look which row holds it rather than read the
        # database's message, and let the query decide.
        if not receipt or not Purchase.select().where(
                (Purchase.receipt == receipt) & (Purchase.id != purchase.id)).exists():
            raise
        _confirm_by_query(purchase, now)
        return MISMATCH
    if outcome == DUPLICATE:
        _fill_receipt(Purchase.get_by_id(purchase.id), receipt, now)
    return outcome


def _by_reference(result: CallbackResult, reference: str | None, now: datetime
                  ) -> tuple[Purchase | None, str]:
    """The purchase whose CallBackURL carried ``reference``, and why it cannot be, if not.

    A push whose answer never came (or was never stored: the sender died) learns its
    CheckoutRequestID here, so settle() finds it.
    """
    if not reference:
        return None, ""
    purchase = Purchase.get_or_none(Purchase.reference == reference[:32])
    if purchase is None:
        return None, f"no purchase has reference {reference[:32]!r}"
    if purchase.checkout_request_id is None:
        with db.atomic():
            learned = (Purchase.update(checkout_request_id=result.checkout_request_id,
                                       merchant_request_id=result.merchant_request_id,
                                       updated_at=now)
                       .where((Purchase.id == purchase.id)
                              & Purchase.checkout_request_id.is_null()).execute())
            if learned:
                (Purchase.update(status=Purchase.PENDING, next_query_at=now)
                 .where((Purchase.id == purchase.id)
                        & Purchase.status.in_(_WITHOUT_ANSWER)).execute())
        purchase = Purchase.get_by_id(purchase.id)
    if purchase.checkout_request_id != result.checkout_request_id:
        return None, (f"reference of purchase {purchase.id}, which has checkout "
                      f"{purchase.checkout_request_id}")
    return purchase, ""


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


def record_callback(raw_body: bytes, remote_addr: str, now: datetime,
                    reference: str | None = None) -> tuple[str, Purchase | None]:
    """Settle a Daraja callback and keep a record of it; returns (outcome, purchase).

    ``reference`` is the purchase reference from the CallBackURL. Never waits: a callback
    that beats the push's answer finds its purchase by that reference.
    """
    text = raw_body.decode("utf-8", errors="replace")
    try:
        result = parse_callback(raw_body)
    except MalformedCallback as exc:
        CallbackRecord.create(received_at=now, remote_addr=remote_addr or "",
                              outcome=MALFORMED, detail=exc.operator_message, body=text)
        return MALFORMED, None
    purchase = Purchase.get_or_none(Purchase.checkout_request_id == result.checkout_request_id)
    detail = result.result_desc
    if purchase is None:
        purchase, problem = _by_reference(result, reference, now)
        detail = problem or detail
    outcome = UNKNOWN if purchase is None else settle(
        result.checkout_request_id, success=result.success, result_code=result.result_code,
        result_desc=result.result_desc, receipt=result.receipt, amount=result.amount,
        phone=result.phone, via="callback", now=now)
    if outcome == UNKNOWN and result.success and not reference:
        orphan = _orphan_for(result.phone, result.amount, now)
        if orphan is not None:
            # A callback to a CallBackURL without a reference (sent before references
            # existed): never credited automatically, but put in front of a person.
            (Purchase.update(status=Purchase.REVIEW, updated_at=now,
                             result_desc=f"review: callback {result.checkout_request_id} "
                                         f"receipt {result.receipt} may be this push")
             .where(Purchase.id == orphan.id).execute())
            detail = f"may belong to purchase {orphan.id} (push answer never came)"
    elif outcome == DUPLICATE and result.success and _second_payment(purchase, result):
        # Paid already with another receipt (from the M-Pesa menu): this prompt was paid
        # too. That money is a payment of its own, never dropped (ledger/c2b.py).
        from . import c2b

        second = c2b.record_confirmation(
            {"TransactionType": "STK paid after the menu", "TransID": result.receipt,
             "TransAmount": str(result.amount), "MSISDN": str(result.phone or ""),
             "TransTime": "", "BillRefNumber": ""},
            source_ip=remote_addr, via="callback", now=now)
        detail = (f"purchase {purchase.id} was already paid ({purchase.receipt}); "
                  f"second payment {result.receipt}: {second.outcome} {second.reason}")[:500]
    elif outcome == MISMATCH:
        detail = (_mismatch(purchase, result.amount, result.phone)
                  or f"receipt {result.receipt} is already another purchase's") \
            + "; confirming by query"
    elif outcome == UNCONFIRMED:
        detail = "success without receipt, amount or phone; confirming by query"
    elif outcome == LATE:
        detail = f"late success credited: {result.result_desc}"
    CallbackRecord.create(received_at=now, remote_addr=remote_addr or "",
                          checkout_request_id=result.checkout_request_id,
                          result_code=result.result_code, outcome=outcome,
                          detail=detail or "", body=text)
    if outcome in (UNKNOWN, MISMATCH, UNCONFIRMED):
        log.warning("callback %s from %s: %s (%s)", result.checkout_request_id, remote_addr,
                    outcome, detail)
    return outcome, purchase


def _second_payment(purchase: Purchase | None, result: CallbackResult) -> bool:
    """A success with its receipt for a purchase already paid under another receipt."""
    if purchase is None or not result.receipt or result.amount is None:
        return False
    current = Purchase.get_by_id(purchase.id)
    return bool(current.receipt and current.receipt != result.receipt
                and not Purchase.select().where(Purchase.receipt == result.receipt).exists())


def record_refused(raw_body: bytes, remote_addr: str, now: datetime, reason: str) -> None:
    """Keep a callback that was refused before reading (e.g. from an unexpected address)."""
    CallbackRecord.create(received_at=now, remote_addr=remote_addr or "", outcome="refused",
                          detail=reason, body=raw_body.decode("utf-8", errors="replace"))
    log.warning("callback from %s refused: %s", remote_addr, reason)
