"""The sales ledger: STK Push purchases, their follow-up by query, vouchers and reconnects.

Settlement itself (callback and query alike) lives in :mod:`portal.settlement`; this
module starts purchases, decides when to ask Daraja again, says where a purchase stands
for the customer's page, and turns codes (vouchers, access codes, receipts) into a
logged-in device. The agent and the CLI call the same functions as the views.
"""
from __future__ import annotations

import hmac
import logging
import re
from datetime import datetime, timedelta

from . import access
from .errors import (
    KibandaError, NotFound, RateLimited, RouterError, RouterTrap, ValidationError,
)
from .models import CodeAttempt, Grant, OutboxEvent, Package, Purchase, Voucher, db
from .mpesa import MpesaTimeout, failure_reason, normalise_phone, result_message
from .settlement import PUSH_TIMED_OUT, record_callback, settle  # noqa: F401 - API

log = logging.getLogger(__name__)

PUSH_REPEAT_WINDOW = timedelta(minutes=2)  # Daraja refuses the same amount again (code 17)
DEVICE_PUSH_LIMIT, DEVICE_PUSH_WINDOW = 5, timedelta(minutes=10)
CODE_ATTEMPT_LIMIT, CODE_ATTEMPT_WINDOW = 10, timedelta(minutes=10)
QUERY_FIRST_DELAY, QUERY_MAX_DELAY = 5, 60
#: A prompt times out on the phone after about a minute; 5 leaves room for slow networks.
PENDING_LIFETIME = timedelta(minutes=5)
PROMPT_LIFETIME = timedelta(minutes=2)
_RECEIPT = re.compile(r"^[A-Z0-9]{10}$")


class DeviceLimitReached(KibandaError):
    """The package's devices are all online already."""

    status = 409
    customer_en = ("All the devices this package allows are online already. Log one out, "
                   "or buy another package for this device.")
    customer_sw = ("Vifaa vyote vinavyoruhusiwa na kifurushi hiki viko mtandaoni tayari. "
                   "Ondoa kimoja, au nunua kifurushi kingine kwa kifaa hiki.")


class DeviceLoginFailed(RouterError):
    """The router could not log this device in; ``grant`` is still good to use."""

    def __init__(self, operator_message: str = "", *, grant: Grant, **kwargs):
        super().__init__(operator_message, **kwargs)
        self.grant = grant


class AccessExpired(KibandaError):
    """The code was good, but its time is over."""

    status = 410
    customer_en = "This code has expired. Please buy a new package."
    customer_sw = "Muda wa namba hii umeisha. Tafadhali nunua kifurushi kipya."


# -- abuse limits ----------------------------------------------------------------------

def _minutes(seconds: float) -> int:
    return max(1, -(-int(seconds) // 60))


def _wait_error(operator: str, seconds: float) -> RateLimited:
    minutes = _minutes(seconds)
    return RateLimited(
        operator,
        en=f"Too many attempts from this device. Please wait {minutes} "
           f"minute{'s' if minutes != 1 else ''} and try again.",
        sw=f"Majaribio mengi mno kutoka kifaa hiki. Tafadhali subiri dakika {minutes} "
           f"ujaribu tena.")


def _device_key(mac: str, ip: str) -> str:
    return (mac or "").strip().upper() or (ip or "").strip()


def check_push_limits(phone: str, amount: int, mac: str, ip: str, now: datetime) -> None:
    """Raise RateLimited when this phone or device may not get another push yet."""
    recent = (Purchase.select().where((Purchase.phone == phone) & (Purchase.amount == amount)
                                      & (Purchase.created_at > now - PUSH_REPEAT_WINDOW))
              .order_by(Purchase.created_at.desc()).first())
    if recent is not None:
        wait = (recent.created_at + PUSH_REPEAT_WINDOW - now).total_seconds()
        minutes = _minutes(wait)
        raise RateLimited(
            f"{phone} was asked for KES {amount} at {recent.created_at}",
            en=f"We already sent a payment request for this amount to this phone. Check your "
               f"phone, or wait {minutes} minute{'s' if minutes != 1 else ''} and try again.",
            sw=f"Tayari tumetuma ombi la malipo la kiasi hiki kwa simu hii. Angalia simu "
               f"yako, au subiri dakika {minutes} ujaribu tena.")
    device = _device_key(mac, ip)
    if not device:
        return
    column = Purchase.mac if mac else Purchase.ip
    window = list(Purchase.select(Purchase.created_at)
                  .where((column == device) & (Purchase.created_at > now - DEVICE_PUSH_WINDOW))
                  .order_by(Purchase.created_at))
    if len(window) >= DEVICE_PUSH_LIMIT:
        oldest = window[-DEVICE_PUSH_LIMIT].created_at
        raise _wait_error(f"device {device}: {len(window)} pushes in 10 minutes",
                          (oldest + DEVICE_PUSH_WINDOW - now).total_seconds())


def check_code_attempts(mac: str, ip: str, now: datetime) -> None:
    """Raise RateLimited after too many wrong codes from this device."""
    device = _device_key(mac, ip)
    wrong = list(CodeAttempt.select(CodeAttempt.at)
                 .where((CodeAttempt.device == device) & (CodeAttempt.ok == False)  # noqa: E712
                        & (CodeAttempt.at > now - CODE_ATTEMPT_WINDOW))
                 .order_by(CodeAttempt.at))
    if len(wrong) >= CODE_ATTEMPT_LIMIT:
        oldest = wrong[-CODE_ATTEMPT_LIMIT].at
        raise _wait_error(f"device {device}: {len(wrong)} wrong codes in 10 minutes",
                          (oldest + CODE_ATTEMPT_WINDOW - now).total_seconds())


def _attempt(mac: str, ip: str, ok: bool, now: datetime) -> None:
    CodeAttempt.create(device=_device_key(mac, ip), at=now, ok=ok)


# -- purchases -------------------------------------------------------------------------

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
                   lang="en", mpesa, callback_url, now, account_reference="WIFI") -> Purchase:
    """Validate, apply the abuse limits, send the STK Push and record a pending Purchase.

    The row is reserved (inside a write transaction, so two taps cannot both pass the
    limits) before the push, and only given its CheckoutRequestID after: a push that
    times out stays pending without one, for a person to match with a late callback.
    """
    package = _package_on_sale(package_id)
    phone = normalise_phone(phone_raw or "")
    mac = (mac or "").strip().upper()
    with db.atomic("IMMEDIATE"):
        check_push_limits(phone, package.price, mac, ip or "", now)
        purchase = Purchase.create(
            phone=phone, package=package, amount=package.price, mac=mac, ip=ip or "",
            link_login_only=link_login_only or "", link_orig=link_orig or "",
            language=lang if lang in ("en", "sw") else "en", created_at=now, updated_at=now)
    try:
        pushed = mpesa.stk_push(phone, package.price, account_reference,
                                f"WiFi {package.name_en}"[:13], callback_url, now=now)
    except MpesaTimeout as exc:
        log.warning("purchase %s: push answer never came (%s); kept for review",
                    purchase.id, exc.operator_message)
        (Purchase.update(result_desc=f"{PUSH_TIMED_OUT}: {exc.operator_message}", updated_at=now)
         .where(Purchase.id == purchase.id).execute())
        return Purchase.get_by_id(purchase.id)
    except KibandaError:
        # Daraja refused before anything reached the phone: no attempt to keep.
        Purchase.delete().where(Purchase.id == purchase.id).execute()
        raise
    (Purchase.update(checkout_request_id=pushed.checkout_request_id,
                     merchant_request_id=pushed.merchant_request_id, updated_at=now,
                     next_query_at=now + timedelta(seconds=QUERY_FIRST_DELAY))
     .where(Purchase.id == purchase.id).execute())
    return Purchase.get_by_id(purchase.id)


def _query_delay(attempts: int) -> int:
    """5 s, 10 s, 20 s, 40 s, then every 60 s."""
    return min(QUERY_MAX_DELAY, QUERY_FIRST_DELAY * 2 ** min(attempts, 6))


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
    claimed = (Purchase.update(query_attempts=Purchase.query_attempts + 1,
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
    if not purchase.query_attempts or purchase.next_query_at is None:
        return False
    last_query = purchase.next_query_at - timedelta(
        seconds=_query_delay(purchase.query_attempts))
    return last_query >= purchase.created_at + PROMPT_LIFETIME


def expire_stale(now: datetime, mpesa=None) -> int:
    """Expire pending purchases with no answer after 5 minutes; returns how many.

    With ``mpesa`` each one is queried first. Without it only purchases that Daraja
    still called pending after the prompt had timed out on the phone are expired. A push whose answer never came (no CheckoutRequestID)
    cannot be queried: it goes to review. A late success is still credited by settle().
    """
    stale = list(Purchase.select().where((Purchase.status == Purchase.PENDING)
                                         & (Purchase.created_at <= now - PENDING_LIFETIME)))
    expired = 0
    for purchase in stale:
        if not purchase.checkout_request_id:
            (Purchase.update(status=Purchase.REVIEW, updated_at=now, next_query_at=None)
             .where((Purchase.id == purchase.id) & (Purchase.status == Purchase.PENDING))
             .execute())
            continue
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


def grant_for(purchase: Purchase) -> Grant | None:
    """The Grant a paid purchase earned (None before it is paid)."""
    return Grant.get_or_none(Grant.purchase == purchase.id)


def provision_if_due(grant: Grant | None, gateway, now: datetime) -> Grant | None:
    """Retry putting a waiting grant on the router when its retry time has come."""
    if grant is None or grant.id not in access.due_for_provisioning(now):
        return grant
    return access.provision_grant(grant.id, gateway, now)


def _both(code) -> dict:
    return {"en": result_message(code, "en"), "sw": result_message(code, "sw")}


_MESSAGES = {
    "pending": {"en": "Check your phone and enter your M-Pesa PIN.",
                "sw": "Angalia simu yako na uweke PIN yako ya M-Pesa."},
    "paid": {"en": "Paid. Connecting you now...",
             "sw": "Umelipa. Tunakuunganisha sasa..."},
    "online": {"en": "You are online. Enjoy!", "sw": "Uko mtandaoni. Furahia!"},
    "used_up": {"en": "Your package has ended. Buy a new one to go back online.",
                "sw": "Kifurushi chako kimeisha. Nunua kipya kurudi mtandaoni."},
    "no_answer": {"en": "We got no answer from M-Pesa. No money was taken. Please try again.",
                  "sw": "Hatukupata jibu kutoka M-Pesa. Hakuna pesa iliyotolewa. "
                        "Tafadhali jaribu tena."},
    "review": {"en": "We could not confirm this payment. If M-Pesa took money, show the "
                     "staff your M-Pesa message and they will connect you.",
               "sw": "Hatukuweza kuthibitisha malipo haya. Kama M-Pesa ilikata pesa, "
                     "onyesha wahudumu ujumbe wako wa M-Pesa nao watakuunganisha."},
}


def purchase_state(purchase: Purchase, now: datetime) -> dict:
    """Where a purchase stands, for the customer's page and its JSON."""
    grant = grant_for(purchase) if purchase.status == Purchase.PAID else None
    status, reason = purchase.status, None
    if purchase.status == Purchase.PAID:
        status = "online" if grant and grant.logged_in_at else "paid"
        if grant and access.grant_time_left(grant, now) == 0:
            status, reason = "expired", "used_up"
    elif purchase.status == Purchase.REVIEW:
        status, reason = "failed", "review"
    elif purchase.status == Purchase.FAILED:
        reason = failure_reason(purchase.result_code)
    elif purchase.status == Purchase.EXPIRED:
        reason = "no_answer"
    if status == "failed" and reason != "review":
        message = _both(purchase.result_code)
    else:
        message = _MESSAGES[reason or status]
    return {
        "id": purchase.id,
        "status": status,
        "reason": reason,
        "message": message,
        "package": purchase.package.name_en,
        "amount": purchase.amount,
        "phone": purchase.phone,
        "access_code": grant.username if grant else None,
        "receipt": purchase.receipt,
        "expires_at": grant.expires_at.isoformat() + "Z" if grant else None,
        "time_left": access.grant_time_left(grant, now) if grant else 0,
        "login_needed": bool(grant and not grant.logged_in_at
                             and grant.router_state == Grant.ON_ROUTER
                             and not grant.login_ip),
    }


# -- codes: vouchers, access codes, receipts -------------------------------------------

def normalise_code(text: str) -> str:
    """A typed code without spaces or dashes, upper-case."""
    return re.sub(r"[\s\-]", "", str(text or "")).upper()[:40]


def _wrong_code(mac: str, ip: str, now: datetime, typed: str) -> ValidationError:
    _attempt(mac, ip, False, now)
    return ValidationError(f"wrong code {typed!r}", field="code",
                           en="That code is not valid. Check it and try again.",
                           sw="Namba hiyo si sahihi. Iangalie ujaribu tena.")


def _login(grant: Grant, gateway, mac: str, ip: str, now: datetime) -> Grant:
    """Log this device in with ``grant``; raises DeviceLoginFailed or DeviceLimitReached."""
    if access.grant_time_left(grant, now) == 0 or grant.router_state == Grant.REMOVED:
        raise AccessExpired(f"grant {grant.id} expired at {grant.expires_at}")
    try:
        access.login_device(grant, gateway, ip, mac, now)
    except RouterTrap as exc:
        if "no more sessions" in (exc.router_message or str(exc)):
            raise DeviceLimitReached(f"grant {grant.id}: {exc.router_message}") from exc
        raise DeviceLoginFailed(f"grant {grant.id}: {exc.operator_message}",
                                grant=Grant.get_by_id(grant.id)) from exc
    except RouterError as exc:
        raise DeviceLoginFailed(f"grant {grant.id}: {exc.operator_message}",
                                grant=Grant.get_by_id(grant.id)) from exc
    return Grant.get_by_id(grant.id)


def redeem_voucher(code, *, mac, ip, gateway, now) -> Grant:
    """Log this device in with a voucher; the first use starts its validity."""
    mac = (mac or "").strip().upper()
    check_code_attempts(mac, ip, now)
    typed = normalise_code(code)
    voucher = Voucher.get_or_none(Voucher.code == typed) if typed else None
    if voucher is None or not hmac.compare_digest(voucher.code.encode(), typed.encode()):
        raise _wrong_code(mac, ip, now, typed)
    if voucher.state == Voucher.VOID:
        _attempt(mac, ip, False, now)
        raise ValidationError(f"voucher {voucher.id} is void", field="code",
                              en="This voucher has been cancelled. Please ask the staff.",
                              sw="Vocha hii imefutwa. Tafadhali uliza wahudumu.")
    if voucher.state == Voucher.EXPIRED or (voucher.expires_at and voucher.expires_at <= now):
        _attempt(mac, ip, True, now)
        raise AccessExpired(f"voucher {voucher.id} expired",
                            en="This voucher has expired. Please buy a new one.",
                            sw="Muda wa vocha hii umeisha. Tafadhali nunua nyingine.")
    _attempt(mac, ip, True, now)
    if voucher.state in (Voucher.NEW, Voucher.ON_ROUTER):
        package = voucher.package
        with db.atomic():
            first = (Voucher.update(state=Voucher.USED, first_login_at=now,
                                    expires_at=now + timedelta(seconds=package.validity_seconds))
                     .where((Voucher.id == voucher.id)
                            & Voucher.state.in_((Voucher.NEW, Voucher.ON_ROUTER))).execute())
            if first:
                grant = access.create_grant(package, Grant.VOUCHER, now, voucher=voucher,
                                            username=voucher.code, login_mac=mac,
                                            login_ip=ip or "")
        if first:
            return access.provision_grant(grant.id, gateway, now)
    grant = Grant.get_or_none(Grant.voucher == voucher.id)
    if grant is None:
        raise NotFound(f"voucher {voucher.id} is used but has no grant")
    return _login(grant, gateway, mac, ip, now)


def reconnect(code, *, mac, ip, gateway, now) -> Grant:
    """Log this device in again with an access code, an M-Pesa receipt or a used voucher."""
    mac = (mac or "").strip().upper()
    check_code_attempts(mac, ip, now)
    typed = normalise_code(code)
    grant = None
    if typed:
        grant = Grant.get_or_none(Grant.username == typed)
        if grant is None and _RECEIPT.match(typed):
            purchase = Purchase.get_or_none(Purchase.receipt == typed)
            if purchase is not None and hmac.compare_digest(purchase.receipt.encode(),
                                                            typed.encode()):
                grant = grant_for(purchase)
        elif grant is not None and not hmac.compare_digest(grant.username.encode(),
                                                           typed.encode()):
            grant = None
    if grant is None:
        if typed and Voucher.get_or_none(Voucher.code == typed) is not None:
            return redeem_voucher(typed, mac=mac, ip=ip, gateway=gateway, now=now)
        raise _wrong_code(mac, ip, now, typed)
    _attempt(mac, ip, True, now)
    return _login(grant, gateway, mac, ip, now)


__all__ = [
    "start_purchase", "settle", "record_callback", "poll_purchase", "due_for_query",
    "purchase_state", "redeem_voucher", "reconnect", "callback_url", "expire_stale",
    "provision_if_due", "grant_for", "normalise_code", "check_push_limits",
    "check_code_attempts", "DeviceLimitReached", "DeviceLoginFailed", "AccessExpired",
]
