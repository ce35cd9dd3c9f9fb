"""Payments made from the M-Pesa menu (C2B PayBill / Till), however Kibanda hears of them.

One function, :func:`record_confirmation`, takes a C2B confirmation from the site's own
URL, from the hub's relay, from Pull Transactions or from a receipt lookup. It records
the raw payment first (a crash after that loses nothing: :func:`match_new` finishes it),
then matches it, in this order:

1. the receipt already belongs to a purchase (an STK payment seen again): nothing to do;
2. PayBill: the account the customer typed is a waiting purchase's account code;
3. phone + amount + time: a waiting purchase (Till, a mistyped account, or an STK
   payment whose callback and queries were all lost, found by Pull Transactions); a Pull
   record also fills in the receipt of a purchase credited by query alone;
4. no waiting purchase: still a sale, for the one package whose price is the amount;
   anything else (no such package, several, cents, two waiting purchases) goes to review
   with its reason, where the owner grants the nearest package or marks it refunded.

Every credit goes through :func:`.settlement.credit`, the same conditional UPDATE as an
STK success: one grant per receipt, whatever path found the payment first.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from peewee import IntegrityError

from .. import upstream
from ..errors import InvalidPhone, NotFound, ValidationError
from ..models import AuditLog, C2BPayment, CallbackRecord, Package, Purchase, db
from ..phone import normalise_phone
from ..timeutil import NAIROBI, utcnow
from . import settlement
from .grants import grant_for

log = logging.getLogger(__name__)

#: No 0/O, 1/I/L, 2/Z, 5/S, 8/B, 6/G: what a customer reads off a phone screen and types.
ACCOUNT_ALPHABET = "ACDEFHJKMNPRTUVWXY3479"
ACCOUNT_CODE_LENGTH = 5
#: A code names its purchase for this long; a payment to an older code is still a sale.
ACCOUNT_CODE_VALIDITY = timedelta(hours=24)
#: A Till payment (or a lost STK payment) matches a purchase made this long before it...
MATCH_BEFORE = timedelta(minutes=30)
#: ...or this long after it (the two clocks differ a little).
MATCH_AFTER = timedelta(minutes=5)
MAX_BODY = 64 * 1024

# Outcome words.
CREDITED, KNOWN, DUPLICATE, REVIEW, MALFORMED = (
    "credited", "known", "duplicate", "review", "malformed")
_TRANS_ID = re.compile(r"^[A-Z0-9]{6,20}$")
_MASKED = re.compile(r"^[0-9*]{12}$")
_HASHED = re.compile(r"^[0-9a-f]{64}$")
#: Where a waiting purchase may be credited by a payment from the menu.
_WAITING = Purchase.OPEN + (Purchase.FAILED, Purchase.EXPIRED, Purchase.REVIEW)


@dataclass(frozen=True)
class C2BOutcome:
    """What became of one confirmation: the word, and the rows it touched."""

    outcome: str
    payment_id: int | None = None
    purchase_id: int | None = None
    reason: str = ""

    @property
    def grant(self):
        """The grant the payment earned (None when it earned none)."""
        if self.outcome != CREDITED or self.purchase_id is None:
            return None
        return grant_for(Purchase.get_by_id(self.purchase_id))


def c2b_urls(config) -> tuple[str, str]:
    """The confirmation and validation URLs to register: the site's own address, or the
    hub's relay for the site when ``MPESA_RELAY`` is on (see the sync contract)."""
    secret = config.get("CALLBACK_SECRET", "")
    relay = upstream.relay_base(config)  # "{hub}/relay/{site}/mpesa", or "" (no relay)
    if relay:
        return (f"{relay}/c2b/confirmation/{secret}", f"{relay}/c2b/validation/{secret}")
    base = str(config.get("CALLBACK_BASE_URL") or config.get("PORTAL_URL") or "").rstrip("/")
    return (f"{base}/mpesa/c2b/confirmation/{secret}", f"{base}/mpesa/c2b/validation/{secret}")


# --- account codes ------------------------------------------------------------------------

def new_account_code() -> str:
    """A random account code (not checked for uniqueness: :func:`unused_account_code`)."""
    return "".join(secrets.choice(ACCOUNT_ALPHABET) for _ in range(ACCOUNT_CODE_LENGTH))


def unused_account_code() -> str:
    """An account code no purchase holds; call inside the write transaction that uses it."""
    for _attempt in range(50):
        code = new_account_code()
        if not Purchase.select().where(Purchase.account_code == code).exists():
            return code
    raise RuntimeError("could not draw a free account code")


def normalise_account(text: str) -> str:
    """What a customer typed as the account: no spaces or dashes, upper case, bounded."""
    return re.sub(r"[\s\-.]", "", str(text or "")).upper()[:20]


# --- reading a confirmation -------------------------------------------------------------------

def whole_amount(text) -> tuple[int | None, str]:
    """``"20.00"`` is KES 20; ``"20.50"`` is cents (None, and why)."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        return None, f"amount {str(text)[:20]!r} is not a number"
    if not value.is_finite() or value <= 0:
        return None, f"amount {str(text)[:20]!r} is not a payment"
    if value != value.to_integral_value():
        return None, f"amount {str(text).strip()[:20]} has cents (M-Pesa takes whole shillings)"
    if value > 10**9:
        return None, f"amount {str(text)[:20]!r} is out of range"
    return int(value), ""


def phone_of(msisdn: str) -> str:
    """The payer's number as 2547XXXXXXXX when M-Pesa sent it whole (any format), else ''."""
    try:
        return normalise_phone(str(msisdn or "")[:40])
    except InvalidPhone:
        return ""


def phone_matches(msisdn: str, phone: str) -> bool:
    """Does the payer M-Pesa names (plain in any format, masked "2547 ***** 126", or
    SHA-256 hashed) fit ``phone`` (2547XXXXXXXX)?"""
    if not phone:
        return False
    text = str(msisdn or "").strip()
    plain = phone_of(text)
    if plain:
        return plain == phone
    compact = re.sub(r"\s", "", text)
    if _HASHED.match(compact.lower()):
        return hashlib.sha256(phone.encode()).hexdigest() == compact.lower()
    if _MASKED.match(compact) and compact.count("*") <= 6:
        return all(c == "*" or c == p for c, p in zip(compact, phone))
    return False


def _paid_at(text: str, fallback: datetime) -> datetime:
    """TransTime (``YYYYMMDDHHmmss``, Nairobi) as naive UTC; ``fallback`` when unreadable."""
    try:
        local = datetime.strptime(str(text or "").strip()[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return fallback
    return local.replace(tzinfo=NAIROBI).astimezone(timezone.utc).replace(tzinfo=None)


def _field(payload: dict, name: str, limit: int) -> str:
    value = payload.get(name)
    return "" if value is None else str(value).strip()[:limit]


# --- recording and matching -----------------------------------------------------------------

def record_confirmation(payload, *, source_ip: str = "", via: str = "direct",
                        now: datetime | None = None) -> C2BOutcome:
    """Record one C2B confirmation (a dict, or the raw body), then match and credit it.

    ``via``: direct (the site's own URL), relay (the hub), pull (Pull Transactions) or
    lookup (a receipt a customer typed). Safe to call any number of times for the same
    receipt: the payment is recorded once and credited at most once.
    """
    now = now or utcnow()
    raw = payload if isinstance(payload, (bytes, str)) else None
    if raw is not None:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        try:
            payload = json.loads(text[:MAX_BODY])
        except ValueError:
            payload = None
    else:
        text = json.dumps(payload, default=str)[:MAX_BODY]
    trans_id = normalise_account(payload.get("TransID")) if isinstance(payload, dict) else ""
    if not _TRANS_ID.match(trans_id):
        CallbackRecord.create(received_at=now, remote_addr=(source_ip or "")[:45],
                              outcome=MALFORMED,
                              detail=f"C2B confirmation ({via}) without a usable TransID",
                              body=text[:MAX_BODY])
        log.warning("C2B confirmation from %s (%s) without a usable TransID", source_ip, via)
        return C2BOutcome(MALFORMED)
    if C2BPayment.select().where(C2BPayment.trans_id == trans_id).exists():
        return _again(trans_id, via, source_ip, text, now)
    known = Purchase.get_or_none(Purchase.receipt == trans_id)
    if known is not None:
        return C2BOutcome(KNOWN, purchase_id=known.id)
    amount, amount_problem = whole_amount(payload.get("TransAmount"))
    try:
        with db.atomic():
            payment = C2BPayment.create(
                trans_id=trans_id, transaction_type=_field(payload, "TransactionType", 40),
                bill_ref=_field(payload, "BillRefNumber", 40),
                amount_text=_field(payload, "TransAmount", 20), amount=amount,
                msisdn=_field(payload, "MSISDN", 80),
                paid_at=_paid_at(_field(payload, "TransTime", 20), now),
                first_name=_field(payload, "FirstName", 40), via=via[:8],
                source_ip=(source_ip or "")[:45], reason=amount_problem, received_at=now,
                body=text)
    except IntegrityError:
        return _again(trans_id, via, source_ip, text, now)
    return match_payment(payment.id, now)


def relayed_confirmation(rest: str, body, *, source_ip: str, config,
                         now: datetime | None = None) -> C2BOutcome | None:
    """A "c2b_confirmation" the hub relayed for this site (sync contract, "Relay"): the
    same secret check as the site's own URL (``rest`` is what followed
    ``/mpesa/c2b/confirmation/``), then :func:`record_confirmation`. None when the secret
    is wrong (the message is not ours to settle; acknowledge it all the same)."""
    expected = str(config.get("CALLBACK_SECRET") or "")
    secret = str(rest or "").strip("/").split("/", 1)[0]
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        log.warning("relayed C2B confirmation with a wrong secret from %s", source_ip)
        return None
    return record_confirmation(body, source_ip=source_ip, via="relay", now=now)


def _again(trans_id: str, via: str, source_ip: str, text: str, now: datetime) -> C2BOutcome:
    """A receipt recorded before: counted (and its body kept) when M-Pesa sent it again."""
    existing = C2BPayment.get(C2BPayment.trans_id == trans_id)
    if via in ("direct", "relay"):
        C2BPayment.update(copies=C2BPayment.copies + 1).where(
            C2BPayment.id == existing.id).execute()
        CallbackRecord.create(received_at=now, remote_addr=(source_ip or "")[:45],
                              outcome=DUPLICATE, body=text,
                              detail=f"C2B receipt {trans_id} received again ({via})")
    if existing.status == C2BPayment.NEW:
        return match_payment(existing.id, now)
    return C2BOutcome(DUPLICATE, existing.id, existing.purchase_id, existing.reason)


def match_payment(payment_id: int, now: datetime) -> C2BOutcome:
    """Match a recorded payment that is still new and credit it (once; see module doc)."""
    with db.atomic("IMMEDIATE") as transaction:
        payment = C2BPayment.get_by_id(payment_id)
        if payment.status != C2BPayment.NEW:
            return C2BOutcome(DUPLICATE, payment.id, payment.purchase_id, payment.reason)
        status, purchase_id, reason = _settle(payment, now)
        rows = (C2BPayment.update(status=status, purchase=purchase_id, reason=reason,
                                  settled_at=now)
                .where((C2BPayment.id == payment.id) & (C2BPayment.status == C2BPayment.NEW))
                .execute())
        if rows != 1:
            transaction.rollback()
            return C2BOutcome(DUPLICATE, payment.id)
    if status == C2BPayment.REVIEW:
        log.warning("C2B payment %s (%s) goes to review: %s", payment.trans_id, payment.via,
                    reason)
    outcome = {C2BPayment.CREDITED: CREDITED, C2BPayment.KNOWN: KNOWN}.get(status, REVIEW)
    return C2BOutcome(outcome, payment.id, purchase_id, reason)


def match_new(now: datetime, older_than: timedelta = timedelta(seconds=30)) -> int:
    """Match payments recorded but never matched (their process died); returns how many."""
    done = 0
    for row in C2BPayment.select(C2BPayment.id).where(
            (C2BPayment.status == C2BPayment.NEW)
            & (C2BPayment.received_at <= now - older_than)).limit(200):
        try:
            match_payment(row.id, now)
        except Exception:  # noqa: BLE001 - one bad row must not hold up the others
            log.exception("C2B payment %s could not be matched; it stays recorded", row.id)
            continue
        done += 1
    return done


def _settle(payment: C2BPayment, now: datetime) -> tuple[str, int | None, str]:
    """Decide and credit inside match_payment's transaction: (status, purchase id, reason)."""
    if payment.amount is None:
        return C2BPayment.REVIEW, None, payment.reason or "amount unreadable"
    account = normalise_account(payment.bill_ref)
    by_code = Purchase.get_or_none(Purchase.account_code == account) if account else None
    notes = []
    if by_code is not None:
        verdict = _for_purchase(payment, by_code, now, code=True)
        if verdict[0] is not None:
            return verdict
        notes.append(verdict[2])
    elif account and len(account) == ACCOUNT_CODE_LENGTH and set(account) <= set(ACCOUNT_ALPHABET):
        notes.append(f"account {account} is no purchase's code")
    candidates = _by_phone_and_time(payment)
    if len(candidates) == 1:
        verdict = _for_purchase(payment, candidates[0], now, code=False)
        if verdict[0] is not None:
            return verdict
        notes.append(verdict[2])
    elif len(candidates) > 1:
        ids = ", ".join(str(p.id) for p in candidates)
        return (C2BPayment.REVIEW, None,
                f"KES {payment.amount} from the menu fits {len(candidates)} waiting "
                f"purchases ({ids}): which one is it?")
    return _standalone(payment, now, "; ".join(notes)
                       or (f"account {payment.bill_ref[:20]!r}: no waiting purchase"
                           if payment.bill_ref else "no waiting purchase"))


def _for_purchase(payment, purchase: Purchase, now: datetime, *, code: bool):
    """Credit ``purchase`` with ``payment`` if it fits: (status, id, reason), or
    (None, None, why not) to look further."""
    label = f"purchase {purchase.id}"
    if payment.via == "pull" and purchase.status == Purchase.PAID and not purchase.receipt \
            and payment.amount == purchase.amount:
        # Credited by query alone (no receipt): this is that payment's record.
        settlement.fill_receipt(purchase, payment.trans_id, now)
        return C2BPayment.KNOWN, purchase.id, f"receipt of {label} (credited by query)"
    if code and now - purchase.created_at > ACCOUNT_CODE_VALIDITY:
        return None, None, f"account {purchase.account_code} of {label} has expired"
    if purchase.status not in _WAITING:
        return None, None, f"{label} was already {purchase.status}"
    if payment.amount < purchase.amount:
        return None, None, f"paid KES {payment.amount} for {label} (price KES {purchase.amount})"
    outcome = settlement.credit(purchase, receipt=payment.trans_id, amount=payment.amount,
                                result_desc=f"paid from the M-Pesa menu ({payment.via})",
                                via="c2b" if payment.via != "pull" else "pull", now=now)
    if outcome in (settlement.SETTLED, settlement.LATE):
        how = "account code" if code else "phone, amount and time"
        return C2BPayment.CREDITED, purchase.id, f"{label} by {how}"
    return None, None, f"{label} could not be credited ({outcome})"


def _by_phone_and_time(payment: C2BPayment) -> list[Purchase]:
    """Waiting purchases (or, for a Pull record, ones credited by query without their
    receipt) of this payer and amount, made shortly before the payment."""
    states = _WAITING + ((Purchase.PAID,) if payment.via == "pull" else ())
    rows = Purchase.select().where(
        Purchase.status.in_(states) & (Purchase.amount == payment.amount)
        & (Purchase.created_at >= payment.paid_at - MATCH_BEFORE)
        & (Purchase.created_at <= payment.paid_at + MATCH_AFTER)
        & (Purchase.phone != ""))
    found = [p for p in rows if phone_matches(payment.msisdn, p.phone)
             and (p.status != Purchase.PAID or not p.receipt)]
    waiting = [p for p in found if p.status != Purchase.PAID]
    # A query-only credit is the likelier owner of a Pull record than a later attempt.
    return [p for p in found if p.status == Purchase.PAID][:1] or waiting


def _standalone(payment: C2BPayment, now: datetime, why: str,
                package: Package | None = None, actor: str = "") -> tuple[str, int | None, str]:
    """A payment no waiting purchase takes: a sale of the package whose price it is."""
    if package is None:
        matching = list(Package.select().where((Package.active == True)  # noqa: E712
                                               & (Package.price == payment.amount)))
        if len(matching) != 1:
            return (C2BPayment.REVIEW, None,
                    f"{why}; KES {payment.amount} is the price of "
                    f"{'no package' if not matching else f'{len(matching)} packages'}")
        package = matching[0]
    purchase = Purchase.create(
        phone=phone_of(payment.msisdn), package=package, amount=package.price,
        status=Purchase.REVIEW, created_at=payment.paid_at or now, updated_at=now,
        result_desc=f"paid from the M-Pesa menu: {why}"[:500])
    outcome = settlement.credit(purchase, receipt=payment.trans_id, amount=payment.amount,
                                result_desc=f"paid from the M-Pesa menu ({payment.via})",
                                via="c2b", now=now)
    if outcome not in (settlement.SETTLED, settlement.LATE):
        raise RuntimeError(f"a new sale for {payment.trans_id} was not credited: {outcome}")
    made = f"sold {package.name_en} by amount" + (f" ({actor})" if actor else "")
    return C2BPayment.CREDITED, purchase.id, f"{why}; {made}"


# --- the owner's review ---------------------------------------------------------------------------

def to_review():
    """Payments from the menu waiting for the owner, newest first."""
    return (C2BPayment.select().where(C2BPayment.status == C2BPayment.REVIEW)
            .order_by(C2BPayment.received_at.desc()))


def recent(limit: int = 20):
    """The latest payments from the menu, whatever became of them."""
    return C2BPayment.select().order_by(C2BPayment.received_at.desc()).limit(limit)


def unusable_messages(limit: int = 20):
    """C2B messages that became no payment (unreadable, refused), newest first."""
    return (CallbackRecord.select().where(CallbackRecord.detail.startswith("C2B")
                                          & (CallbackRecord.outcome != DUPLICATE))
            .order_by(CallbackRecord.received_at.desc()).limit(limit))


def nearest_package(amount: int | None) -> Package | None:
    """The active package whose price is closest to ``amount`` without exceeding it
    (else the cheapest)."""
    packages = list(Package.on_sale())
    if not packages:
        return None
    below = [p for p in packages if amount is not None and p.price <= amount]
    return max(below, key=lambda p: p.price) if below else min(packages, key=lambda p: p.price)


def _in_review(payment_id) -> C2BPayment:
    payment = C2BPayment.get_or_none(C2BPayment.id == payment_id)
    if payment is None:
        raise NotFound(f"C2B payment {payment_id}")
    if payment.status != C2BPayment.REVIEW:
        raise ValidationError(f"payment {payment.trans_id} is {payment.status}",
                              en="This payment has already been dealt with.",
                              sw="Malipo haya yameshashughulikiwa.")
    return payment


def grant_nearest(payment_id, package_id, *, actor: str, now: datetime,
                  address: str = "") -> C2BPayment:
    """The owner sells the chosen (or nearest) package for a payment in review."""
    payment = _in_review(payment_id)
    package = (Package.get_or_none(Package.id == package_id) if str(package_id or "").isdigit()
               else None) or nearest_package(payment.amount)
    if package is None:
        raise ValidationError("no package", field="package", en="Choose a package.",
                              sw="Chagua kifurushi.")
    with db.atomic("IMMEDIATE"):
        if C2BPayment.get_by_id(payment.id).status != C2BPayment.REVIEW:
            raise ValidationError("already resolved", en="This payment has already been dealt with.",
                                  sw="Malipo haya yameshashughulikiwa.")
        payment.amount = payment.amount or package.price
        _status, purchase_id, reason = _standalone(
            payment, now, payment.reason, package=package, actor=f"by {actor}")
        C2BPayment.update(status=C2BPayment.CREDITED, purchase=purchase_id, reason=reason,
                          resolved_by=actor, settled_at=now).where(
            C2BPayment.id == payment.id).execute()
        AuditLog.create(at=now, actor=actor, action="c2b.grant", address=address,
                        detail=f"{payment.trans_id}: {package.name_en}")
    return C2BPayment.get_by_id(payment.id)


def mark_refunded(payment_id, *, actor: str, now: datetime, address: str = "") -> C2BPayment:
    """The owner gave this payment back to the customer: it earns nothing."""
    payment = _in_review(payment_id)
    with db.atomic():
        rows = (C2BPayment.update(status=C2BPayment.REFUNDED, resolved_by=actor, settled_at=now,
                                  reason=f"{payment.reason}; refunded by {actor}")
                .where((C2BPayment.id == payment.id)
                       & (C2BPayment.status == C2BPayment.REVIEW)).execute())
        if rows:
            AuditLog.create(at=now, actor=actor, action="c2b.refund", address=address,
                            detail=f"{payment.trans_id}: KES {payment.amount_text}")
    return C2BPayment.get_by_id(payment.id)


# --- validation (optional: Safaricom asks before taking the money) ------------------------------

def validate(payload, *, reject_unknown_accounts: bool = False) -> tuple[bool, str]:
    """Should M-Pesa take this payment? (accepted, reason). Refuses amounts with cents or
    below every package; with ``reject_unknown_accounts``, PayBill accounts that are no
    purchase's code."""
    if not isinstance(payload, dict):
        return False, "not a JSON object"
    amount, problem = whole_amount(payload.get("TransAmount"))
    if amount is None:
        return False, problem
    cheapest = min((p.price for p in Package.on_sale()), default=None)
    if cheapest is not None and amount < cheapest:
        return False, f"KES {amount} is below every package (cheapest KES {cheapest})"
    account = normalise_account(payload.get("BillRefNumber"))
    if reject_unknown_accounts and account and not Purchase.select().where(
            Purchase.account_code == account).exists():
        return False, f"account {account} is no purchase's code"
    return True, ""
