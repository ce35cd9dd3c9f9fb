"""Purchases: an STK Push started, followed up by query, and expired without an answer.

Settlement itself (callback and query alike) lives in :mod:`.settlement`; this module
starts purchases and decides when to ask Daraja again. The agent and the views call the
same functions.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ..errors import KibandaError, MpesaTimeout, NotFound, ValidationError
from ..models import OutboxEvent, Package, Purchase, db
from ..phone import normalise_phone
from ..timeutil import backoff_seconds
from .limits import check_push_limits, identify
from .settlement import settle

log = logging.getLogger(__name__)

QUERY_FIRST_DELAY, QUERY_MAX_DELAY = 5, 60
#: A prompt times out on the phone after about a minute; 5 leaves room for slow networks.
PENDING_LIFETIME = timedelta(minutes=5)
PROMPT_LIFETIME = timedelta(minutes=2)


def callback_url(config) -> str:
    """The URL Daraja posts results to: the public base + the secret path token."""
    base = str(config.get("CALLBACK_BASE_URL") or config.get("PORTAL_URL") or "").rstrip("/")
    return f"{base}/mpesa/callback/{config.get('CALLBACK_SECRET', '')}"


def _package_on_sale(package_id) -> Package:
    try:
        package = Package.get_or_none(Package.id == int(package_id))
    except (TypeError, ValueError):
        package = None
    if package is None or not package.active:
        raise ValidationError(f"package {package_id!r} is not on sale", field="package",
                              en="Please choose a package.",
                              sw="Tafadhali chagua kifurushi.")
    return package


def start_purchase(package_id, phone_raw, *, mac, ip, link_login_only="", link_orig="",
                   mpesa, callback_url, now, account_reference="WIFI", gateway=None,
                   source="") -> Purchase:
    """Validate, apply the abuse limits, send the STK Push and record the Purchase.

    ``mac`` and ``ip`` are what the phone claims: the router (``gateway``) confirms them
    or not, and ``source`` is the request's own address (:mod:`.limits`). The row is
    written as ``pushing`` (inside a write transaction, so two taps cannot both pass the
    limits) before the push leaves, and becomes ``pending`` with its CheckoutRequestID
    once Daraja accepts. A push whose answer never comes is ``unanswered``: it may have
    reached the phone, so it is kept, never re-sent.
    """
    package = _package_on_sale(package_id)
    phone = normalise_phone(phone_raw or "")
    device = identify(gateway, mac, ip, source)  # the router is asked before the write lock
    with db.atomic("IMMEDIATE"):
        check_push_limits(phone, package.price, device, now)
        purchase = Purchase.create(
            phone=phone, package=package, amount=package.price, mac=device.mac, ip=device.ip,
            source=device.source, verified=device.verified,
            link_login_only=link_login_only or "", link_orig=link_orig or "",
            status=Purchase.PUSHING, created_at=now, updated_at=now)
    try:
        pushed = mpesa.stk_push(phone, package.price, account_reference,
                                f"WiFi {package.name_en}"[:13], callback_url, now=now)
    except MpesaTimeout as exc:
        log.warning("purchase %s: push answer never came (%s); kept for review",
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
    (Purchase.update(status=Purchase.PENDING, checkout_request_id=pushed.checkout_request_id,
                     merchant_request_id=pushed.merchant_request_id, updated_at=now,
                     next_query_at=now + timedelta(seconds=QUERY_FIRST_DELAY))
     .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PUSHING)).execute())
    return Purchase.get_by_id(purchase.id)


def _query_delay(attempts: int) -> int:
    """5 s, 10 s, 20 s, 40 s, then every 60 s."""
    return backoff_seconds(attempts, QUERY_FIRST_DELAY, QUERY_MAX_DELAY)


def due_for_query(now: datetime) -> list[int]:
    """Ids of pending purchases whose next STK query is due."""
    query = Purchase.select(Purchase.id).where(
        (Purchase.status == Purchase.PENDING) & Purchase.checkout_request_id.is_null(False)
        & Purchase.next_query_at.is_null(False) & (Purchase.next_query_at <= now))
    return [row.id for row in query.order_by(Purchase.next_query_at)]


def poll_purchase(purchase_id: int, mpesa, now: datetime, force: bool = False) -> Purchase:
    """Ask Daraja how a pending purchase ended, if a query is due (or ``force``); settle it."""
    purchase = Purchase.get_or_none(Purchase.id == purchase_id)
    if purchase is None:
        raise NotFound(f"purchase {purchase_id}")
    if purchase.status != Purchase.PENDING or not purchase.checkout_request_id:
        return purchase
    if not force and purchase.next_query_at is not None and purchase.next_query_at > now:
        return purchase
    # Claim this due time: of the page, its JSON and the agent, only one asks Daraja.
    claimed = (Purchase.update(query_attempts=Purchase.query_attempts + 1, last_query_at=now,
                               next_query_at=now + timedelta(
                                   seconds=_query_delay(purchase.query_attempts + 1)))
               .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PENDING)
                      & (Purchase.query_attempts == purchase.query_attempts)).execute())
    if not claimed:
        return Purchase.get_by_id(purchase.id)
    try:
        answer = mpesa.stk_query(purchase.checkout_request_id, now=now)
    except KibandaError as exc:
        # Daraja busy or away: the claimed backoff already spaces out the next try.
        log.info("purchase %s: STK query failed: %s", purchase.id, exc.operator_message)
        return Purchase.get_by_id(purchase.id)
    if answer.state == "success":
        settle(purchase.checkout_request_id, success=True, result_code=answer.result_code,
               result_desc=answer.result_desc, via="query", now=now)
    elif answer.state == "failed":
        settle(purchase.checkout_request_id, success=False, result_code=answer.result_code,
               result_desc=answer.result_desc, via="query", now=now)
    return Purchase.get_by_id(purchase.id)


def _answered_late(purchase: Purchase) -> bool:
    """True when Daraja was asked after the prompt on the phone had surely timed out."""
    return (purchase.last_query_at is not None
            and purchase.last_query_at >= purchase.created_at + PROMPT_LIFETIME)


def expire_stale(now: datetime, mpesa=None) -> int:
    """Expire pending purchases with no answer after 5 minutes; returns how many.

    With ``mpesa`` each one is queried first. Without it only purchases that Daraja
    still called pending after the prompt had timed out on the phone are expired. A push
    that never got its answer (``pushing`` or ``unanswered``: no CheckoutRequestID to ask
    about) goes to review. A late success is still credited by settle().
    """
    old = Purchase.created_at <= now - PENDING_LIFETIME
    (Purchase.update(status=Purchase.REVIEW, updated_at=now, next_query_at=None)
     .where(old & Purchase.status.in_((Purchase.PUSHING, Purchase.UNANSWERED))).execute())
    stale = list(Purchase.select().where((Purchase.status == Purchase.PENDING) & old))
    expired = 0
    for purchase in stale:
        if mpesa is not None:
            purchase = poll_purchase(purchase.id, mpesa, now, force=True)
            if purchase.status != Purchase.PENDING:
                continue
        elif not _answered_late(purchase):
            continue
        with db.atomic():
            rows = (Purchase.update(status=Purchase.EXPIRED, updated_at=now, next_query_at=None,
                                    result_desc=purchase.result_desc or "no answer from M-Pesa")
                    .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PENDING))
                    .execute())
            if rows:
                OutboxEvent.record("purchase.expired", purchase_id=purchase.id,
                                   checkout_request_id=purchase.checkout_request_id,
                                   at=now.isoformat())
        expired += rows
    return expired
