"""Purchases: an STK Push started, then asked about until M-Pesa gives its final word.

Settlement itself (callback and query alike) lives in :mod:`.settlement`; this module
starts purchases and decides when to ask Daraja again. The agent and the views call the
same functions.

Nothing here decides that a customer did not pay: only a final ResultCode from M-Pesa
does. A purchase M-Pesa has not answered about keeps being asked about (densely while the
customer is deciding, then backing off) for ``QUERY_HORIZON``; past that, or when there is
nothing to ask about (a push whose answer never came), it goes to a person for review.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .. import upstream
from ..errors import KibandaError, MpesaBusy, MpesaTimeout, NotFound, ValidationError
from ..models import Package, Purchase, db
from ..phone import normalise_phone
from . import events, topups, windows
from .c2b import unused_account_code
from .limits import check_push_limits, identify
from .settlement import settle

log = logging.getLogger(__name__)

#: While the customer is deciding (the prompt lives about a minute on the phone), ask
#: every few seconds: at a site behind NAT the query is how a payment is seen at all.
DENSE_QUERY_EVERY, DENSE_QUERY_PERIOD = 2, timedelta(seconds=90)
#: Then back off: about a tenth of the purchase's age, from 10 s up to every 5 minutes.
QUERY_MIN_DELAY, QUERY_MAX_DELAY = 10, 300
#: How long M-Pesa is asked about a purchase before a person looks at it.
QUERY_HORIZON = timedelta(hours=48)
#: A push with no answer yet after this long died with the process that sent it.
PUSH_ANSWER_WAIT = timedelta(minutes=2)
#: The prompt on the phone has surely timed out by then: the page says "still confirming".
PROMPT_LIFETIME = timedelta(minutes=2)
#: The longest a package id can be (a form field; bounded before it reaches SQLite).
_MAX_ID_DIGITS = 9


def callback_url(config) -> str:
    """Where Daraja posts results: the public base + the secret path token.

    Each purchase adds its own reference to it (:func:`purchase_callback_url`).
    """
    secret = config.get("CALLBACK_SECRET", "")
    relay = upstream.relay_base(config)
    if relay:
        # No public address: M-Pesa posts to the hub, which holds it for our agent.
        return f"{relay}/callback/{secret}"
    base = str(config.get("CALLBACK_BASE_URL") or config.get("PORTAL_URL") or "").rstrip("/")
    return f"{base}/mpesa/callback/{secret}"


def purchase_callback_url(base: str, purchase: Purchase) -> str:
    """The CallBackURL of one purchase: the base with the purchase's opaque reference."""
    return f"{base.rstrip('/')}/{purchase.reference}"


def _package_on_sale(package_id) -> Package:
    text = str(package_id if package_id is not None else "").strip()
    package = None
    if text.isdigit() and len(text) <= _MAX_ID_DIGITS:
        package = Package.get_or_none(Package.id == int(text))
    if package is None or not package.active:
        raise ValidationError(f"package {text[:20]!r} is not on sale", field="package",
                              en="Please choose a package.",
                              sw="Tafadhali chagua kifurushi.")
    return package


def start_purchase(package_id, phone_raw, *, mac, ip, link_login_only="", link_orig="",
                   mpesa, callback_url, now, account_reference=None, gateway=None,
                   source="", topup_of=None, language="en") -> Purchase:
    """Validate, apply the abuse limits, send the STK Push and record the Purchase.

    ``mac`` and ``ip`` are what the phone claims: the router (``gateway``) confirms them
    or not, and ``source`` is the request's own address (:mod:`.limits`). Intent before
    action: the row is committed as ``pushing``, with the reference that rides in the
    CallBackURL, before the push leaves (inside a write transaction, so two taps cannot
    both pass the limits). Daraja's answer makes it ``pending`` with its
    CheckoutRequestID; a push whose answer never comes is ``unanswered``: it may have
    reached the phone, so it is never re-sent, and its callback still finds it.
    ``topup_of``: the Grant this purchase adds to (the caller proved the browser holds it).
    ``language`` (en, sw) is the customer's: their SMS receipt speaks it.
    """
    package = _package_on_sale(package_id)
    windows.check_open(package, now, selling=True)
    if topup_of is not None:
        topups.check_topup(topup_of, package, now)
    phone = normalise_phone(phone_raw or "")
    device = identify(gateway, mac, ip, source)  # the router is asked before the write lock
    with db.atomic("IMMEDIATE"):
        check_push_limits(phone, package.price, device, now)
        purchase = Purchase.create(
            phone=phone, package=package, amount=package.price, mac=device.mac, ip=device.ip,
            source=device.source, verified=device.verified,
            link_login_only=link_login_only or "", link_orig=link_orig or "",
            status=Purchase.PUSHING, created_at=now, updated_at=now,
            account_code=unused_account_code(),
            topup_of=topup_of.id if topup_of is not None else None,
            language=language if language in ("en", "sw") else "en")
    try:
        # The prompt shows the account code the page shows: one code for both ways to
        # pay, and Pull Transactions finds the payment by it (ledger/c2b.py).
        pushed = mpesa.stk_push(phone, package.price, account_reference or purchase.account_code,
                                f"WiFi {package.name_en}"[:13],
                                purchase_callback_url(callback_url, purchase), now=now)
    except MpesaTimeout as exc:
        log.warning("purchase %s: push answer never came (%s); its callback will find it",
                    purchase.id, exc.operator_message)
        (Purchase.update(status=Purchase.UNANSWERED, result_desc=exc.operator_message,
                         updated_at=now)
         .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PUSHING))
         .execute())
        return Purchase.get_by_id(purchase.id)
    except KibandaError:
        # Daraja refused before anything reached the phone: no attempt to keep.
        Purchase.delete().where(Purchase.id == purchase.id).execute()
        raise
    record_push_answer(purchase.id, pushed.checkout_request_id, pushed.merchant_request_id,
                       now)
    return Purchase.get_by_id(purchase.id)


def record_push_answer(purchase_id: int, checkout_request_id: str, merchant_request_id: str,
                       now: datetime) -> None:
    """Store Daraja's answer to a push (its callback may have come first and settled it)."""
    with db.atomic():
        (Purchase.update(checkout_request_id=checkout_request_id,
                         merchant_request_id=merchant_request_id, updated_at=now)
         .where((Purchase.id == purchase_id) & Purchase.checkout_request_id.is_null())
         .execute())
        (Purchase.update(status=Purchase.PENDING, updated_at=now,
                         next_query_at=now + timedelta(seconds=DENSE_QUERY_EVERY))
         .where((Purchase.id == purchase_id)
                & Purchase.status.in_((Purchase.PUSHING, Purchase.UNANSWERED)))
         .execute())


def next_query_delay(purchase: Purchase, now: datetime) -> float:
    """Seconds to the next STK query: every 2 s for the first 90 s, then about a tenth of
    the purchase's age (10 s at first, growing to every 5 minutes)."""
    age = (now - purchase.created_at).total_seconds()
    if age < DENSE_QUERY_PERIOD.total_seconds():
        return DENSE_QUERY_EVERY
    return min(QUERY_MAX_DELAY, max(QUERY_MIN_DELAY, round(age / 10)))


def due_for_query(now: datetime) -> list[int]:
    """Ids of pending purchases whose next STK query is due."""
    query = Purchase.select(Purchase.id).where(
        (Purchase.status == Purchase.PENDING) & Purchase.checkout_request_id.is_null(False)
        & Purchase.next_query_at.is_null(False) & (Purchase.next_query_at <= now))
    return [row.id for row in query.order_by(Purchase.next_query_at)]


def next_query_at() -> datetime | None:
    """When the soonest STK query is due (None when nothing waits): the agent wakes then."""
    row = (Purchase.select(Purchase.next_query_at)
           .where((Purchase.status == Purchase.PENDING) & Purchase.next_query_at.is_null(False))
           .order_by(Purchase.next_query_at).first())
    return row.next_query_at if row else None


def poll_purchase(purchase_id: int, mpesa, now: datetime, force: bool = False) -> Purchase:
    """Ask Daraja how a pending purchase ended, if a query is due (or ``force``); settle it."""
    purchase = Purchase.get_or_none(Purchase.id == purchase_id)
    if purchase is None:
        raise NotFound(f"purchase {purchase_id}")
    if purchase.status != Purchase.PENDING or not purchase.checkout_request_id:
        return purchase
    if not force and purchase.next_query_at is not None and purchase.next_query_at > now:
        return purchase
    attempts = purchase.query_attempts + 1
    # Claim this due time: of the page, its JSON and the agent, only one asks Daraja.
    claimed = (Purchase.update(query_attempts=attempts, last_query_at=now,
                               next_query_at=now + timedelta(
                                   seconds=next_query_delay(purchase, now)))
               .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PENDING)
                      & (Purchase.query_attempts == purchase.query_attempts)).execute())
    if not claimed:
        return Purchase.get_by_id(purchase.id)
    try:
        answer = mpesa.stk_query(purchase.checkout_request_id, now=now)
    except MpesaBusy as exc:
        # Throttled: ask this one again only after Daraja's own wait.
        wait = max(exc.retry_after or 30, next_query_delay(purchase, now))
        (Purchase.update(next_query_at=now + timedelta(seconds=wait))
         .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PENDING)).execute())
        log.info("purchase %s: Daraja busy, next query in %ss", purchase.id, wait)
        return Purchase.get_by_id(purchase.id)
    except KibandaError as exc:
        # Daraja or the uplink away: the claimed backoff already spaces out the next try.
        log.info("purchase %s: STK query failed: %s", purchase.id, exc.operator_message)
        return Purchase.get_by_id(purchase.id)
    if answer.state == "success":
        settle(purchase.checkout_request_id, success=True, result_code=answer.result_code,
               result_desc=answer.result_desc, via="query", now=now)
    elif answer.state == "failed":
        settle(purchase.checkout_request_id, success=False, result_code=answer.result_code,
               result_desc=answer.result_desc, via="query", now=now)
    return Purchase.get_by_id(purchase.id)


def sweep_unconfirmed(now: datetime) -> int:
    """Move on purchases M-Pesa may never answer about; returns how many went to review.

    A push still ``pushing`` after two minutes died with the process that sent it: it is
    ``unanswered`` (its callback, which carries its reference, still finds it). An
    unanswered push, or a pending one that Daraja has not answered about for
    ``QUERY_HORIZON``, goes to review. Nothing is marked failed or expired here: only
    M-Pesa's final word does that, and a success that comes later is still credited.
    """
    (Purchase.update(status=Purchase.UNANSWERED, updated_at=now,
                     result_desc="no answer to the push: the sender stopped")
     .where((Purchase.status == Purchase.PUSHING)
            & (Purchase.created_at <= now - PUSH_ANSWER_WAIT)).execute())
    stale = list(Purchase.select().where(
        Purchase.status.in_((Purchase.UNANSWERED, Purchase.PENDING))
        & (Purchase.created_at <= now - QUERY_HORIZON)))
    reviewed = 0
    for purchase in stale:
        with db.atomic():
            rows = (Purchase.update(status=Purchase.REVIEW, updated_at=now, next_query_at=None,
                                    result_desc=f"no final word from M-Pesa in "
                                                f"{QUERY_HORIZON.total_seconds() / 3600:g} h")
                    .where((Purchase.id == purchase.id) & (Purchase.status == purchase.status))
                    .execute())
            if rows:
                events.record_event("purchase.review", now, purchase_id=purchase.id,
                                    checkout_request_id=purchase.checkout_request_id,
                                    amount=purchase.amount)
        reviewed += rows
    return reviewed
