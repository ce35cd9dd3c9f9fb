"""The SMS outbox: messages queued in the transaction of what they tell, sent by the agent.

Every message is one ``SmsMessage`` row, unique by its ``key`` (``receipt:<grant id>``,
``receipt:<grant id>:topup:<purchase id>``, ``reminder:<grant id>:<its end>``,
``summary:<day>``, ...), so nothing is queued twice. The agent's
``sms`` step (:func:`send_due`) sends what is due through a provider (``portal/sms``):

- accepted: ``sent`` with the provider's id, cost and parts; a delivery report later
  makes it ``delivered`` or ``failed`` (:func:`record_delivery`);
- refused for good (UserInBlacklist, InvalidSenderId, InvalidPhoneNumber, no credit):
  ``failed`` with the provider's reason, never sent again;
- a retryable error (no answer, a timeout, a 5xx, a risk hold): queued again after a
  capped backoff, up to ``MAX_ATTEMPTS`` or the message's ``give_up_at``.

Never sent twice: a row is claimed (``queued -> sending``, committed) before the request
leaves, and a row found still ``sending`` after ``SENDING_LEASE`` (the agent died between
the provider's acceptance and writing it down) is closed as failed with "unknown", never
sent again. The one window left is a lost answer (a read timeout, a connection dropped
after the request left): Africa's Talking has no idempotency key, so that message is sent
again and may arrive twice; a receipt arriving twice is better than none.

SMS is off unless the site configured a provider: ``sms.site`` (a Setting row written by
the portal and the agent from the settings, :func:`record_configuration`) says so to
code that has no settings at hand, like :func:`queue_receipt` inside ``create_grant``.
"""
from __future__ import annotations

import hmac
import json
import logging
from urllib.parse import parse_qsl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from peewee import IntegrityError

from .. import upstream
from ..i18n import translate
from ..models import Grant, Purchase, Setting, SmsMessage, db
from ..phone import is_valid_phone, normalise_phone
from ..sms import gsm7
from ..sms.provider import Accepted, SmsRetryable
from ..timeutil import NAIROBI, backoff_seconds, utcnow

log = logging.getLogger(__name__)

SITE_KEY = "sms.site"
#: Give up on a message after this many tries (about nine hours with the backoff below).
MAX_ATTEMPTS = 20
RETRY_FIRST, RETRY_MAX = 30, 1800
#: A row still ``sending`` this long after its claim was left by a crash (the request
#: times out well within it).
SENDING_LEASE = timedelta(minutes=5)
#: The most messages one cycle sends: settling payments never waits on a backlog.
PER_CYCLE = 20
#: Longest names put into a text, so every message stays in one SMS.
SITE_CHARS, PACKAGE_CHARS = 16, 22
RECEIPT, REMINDER, SUMMARY, ALERT = "receipt", "reminder", "summary", "alert"
REMINDER_BEFORE = timedelta(minutes=10)
#: Delivery report statuses (Africa's Talking's words) and the state each one means.
DELIVERY_STATES = {"Success": SmsMessage.DELIVERED, "Failed": SmsMessage.FAILED,
                   "Rejected": SmsMessage.FAILED, "AbsentSubscriber": SmsMessage.FAILED,
                   "Sent": SmsMessage.SENT, "Submitted": SmsMessage.SENT,
                   "Buffered": SmsMessage.SENT}


# --- on or off ------------------------------------------------------------------------------

def record_configuration(configured: bool, site_name: str) -> None:
    """Say to every process whether SMS is on (and the site's name for its texts)."""
    current = Setting.get_or_none(Setting.key == SITE_KEY)
    if not configured:
        if current is not None:
            Setting.delete().where(Setting.key == SITE_KEY).execute()
        return
    value = json.dumps({"site": site_name})
    if current is None or current.value != value:
        (Setting.insert(key=SITE_KEY, value=value, encrypted=False, updated_at=utcnow())
         .on_conflict_replace().execute())


def site_name() -> str | None:
    """The site's name for SMS texts, or None when SMS is off."""
    row = Setting.get_or_none(Setting.key == SITE_KEY)
    if row is None:
        return None
    try:
        return str(json.loads(row.value).get("site") or "WiFi")
    except (ValueError, AttributeError):
        return "WiFi"


# --- words ----------------------------------------------------------------------------------

def short_name(text: str, limit: int) -> str:
    """``text`` in GSM-7, at most ``limit`` characters."""
    plain = gsm7.to_gsm7(" ".join(str(text or "").split()))
    return plain if len(plain) <= limit else plain[:limit - 1].rstrip() + "."


def time_words(seconds: int, lang: str) -> str:
    """A short duration: "2 days 3 h", "45 min" / "siku 2 saa 3", "dk 45" (two units)."""
    days, rest = divmod(max(0, int(seconds)), 86400)
    hours, minutes = divmod(rest // 60, 60)
    if lang == "sw":
        parts = [f"siku {days}" if days else "", f"saa {hours}" if hours else "",
                 f"dk {minutes}" if minutes else ""]
    else:
        parts = [f"{days} day{'s' if days != 1 else ''}" if days else "",
                 f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    shown = [part for part in parts if part][:2]
    return " ".join(shown) or ("dk 0" if lang == "sw" else "0 min")


def _sentence_start(words: str) -> str:
    return words[:1].upper() + words[1:]


def local_stamp(moment: datetime) -> str:
    """A time as the SMS writes it, in Nairobi: "03/12 14:05"."""
    return moment.replace(tzinfo=timezone.utc).astimezone(NAIROBI).strftime("%d/%m %H:%M")


def receipt_text(*, site: str, package: str, code: str, seconds_left: int, until: datetime,
                 lang: str) -> str:
    """The customer's receipt: package, time left and access code."""
    return gsm7.to_gsm7(translate(
        "{site}: {package} paid. Access code {code}. {time} left, to {until}. "
        "Type the code on the WiFi page to reconnect.", lang,
        site=short_name(site, SITE_CHARS), package=short_name(package, PACKAGE_CHARS),
        code=code, time=_sentence_start(time_words(seconds_left, lang)),
        until=local_stamp(until)))


def reminder_text(*, site: str, code: str, until: datetime, lang: str) -> str:
    """"10 minutes left", with how to top up."""
    return gsm7.to_gsm7(translate(
        "{site}: 10 minutes left on code {code} (ends {until}). To stay online, buy a new "
        "package on the WiFi page.", lang,
        site=short_name(site, SITE_CHARS), code=code, until=local_stamp(until)))


# --- queueing ---------------------------------------------------------------------------------

def queue(key: str, kind: str, phone: str, text: str, now: datetime, *, lang: str = "en",
          give_up_at: datetime | None = None) -> SmsMessage | None:
    """Queue one message unless one with ``key`` exists; returns the new row or None.

    Safe inside the caller's transaction (a savepoint catches the duplicate key).
    """
    to = "+" + normalise_phone(phone)
    try:
        with db.atomic():
            return SmsMessage.create(key=key[:80], kind=kind, to=to, language=lang, text=text,
                                     parts=gsm7.parts(text), created_at=now,
                                     next_attempt_at=now, give_up_at=give_up_at)
    except IntegrityError:
        return None


def queue_receipt(grant: Grant, purchase: Purchase, now: datetime) -> SmsMessage | None:
    """The receipt for a sale to a phone; call in the sale's transaction (``create_grant``,
    ``grants.top_up``: a top-up gets its own receipt, with the grant's new time left).

    Nothing when SMS is off or the payer's number is not a whole Kenyan mobile number (a
    menu payment may carry a masked one)."""
    site = site_name()
    if site is None or not is_valid_phone(purchase.phone or ""):
        return None
    lang = purchase.language if purchase.language in ("en", "sw") else "en"
    seconds = int((grant.expires_at - now).total_seconds())
    # the package paid for (a top-up's own), the grant's code and time left
    text = receipt_text(site=site, package=purchase.package.name(lang), code=grant.username,
                        seconds_left=seconds, until=grant.expires_at, lang=lang)
    # one receipt per sale: the grant's first purchase, or each top-up of it
    key = (f"{RECEIPT}:{grant.id}" if purchase.topup_of is None
           else f"{RECEIPT}:{grant.id}:topup:{purchase.id}")
    return queue(key, RECEIPT, purchase.phone, text, now, lang=lang,
                 give_up_at=grant.expires_at)


def queue_reminders(now: datetime, limit: int = 50) -> int:
    """"10 minutes left" for paid grants that end within ten minutes (once per grant);
    returns how many were queued. Packages of 20 minutes or less get none."""
    site = site_name()
    if site is None:
        return 0
    ending = (Grant.select(Grant, Purchase).join(Purchase)
              .where((Grant.expires_at > now) & (Grant.expires_at <= now + REMINDER_BEFORE)
                     & (Grant.router_state != Grant.REMOVED)
                     & (Grant.created_at < now - 2 * REMINDER_BEFORE))
              .order_by(Grant.expires_at).limit(limit))
    queued = 0
    for grant in ending:
        purchase = grant.purchase
        if not is_valid_phone(purchase.phone or ""):
            continue
        lang = purchase.language if purchase.language in ("en", "sw") else "en"
        text = reminder_text(site=site, code=grant.username, until=grant.expires_at, lang=lang)
        # once per end: a grant topped up with more time is reminded of its new end too
        key = f"{REMINDER}:{grant.id}:{grant.expires_at:%Y%m%d%H%M}"
        if queue(key, REMINDER, purchase.phone, text, now, lang=lang,
                 give_up_at=grant.expires_at):
            queued += 1
    return queued


# --- sending ----------------------------------------------------------------------------------

@dataclass
class SendReport:
    """One run of :func:`send_due`: counts, and whether the provider was reachable."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    #: True: the provider answered (the uplink works); False: a network error; None: no try.
    reachable: bool | None = None


def _close(message_id: int, now: datetime, **values) -> None:
    SmsMessage.update(finished_at=now, **values).where(SmsMessage.id == message_id).execute()


def close_abandoned(now: datetime) -> int:
    """Rows a crash left ``sending``: failed as unknown, never sent again; returns how many."""
    return (SmsMessage.update(state=SmsMessage.FAILED, finished_at=now, failure_code=None,
                              failure_reason="Unknown")
            .where((SmsMessage.state == SmsMessage.SENDING)
                   & (SmsMessage.next_attempt_at < now - SENDING_LEASE)).execute())


def _claim(row: SmsMessage, now: datetime) -> bool:
    """queued -> sending, conditional (one sender per row)."""
    return bool(SmsMessage.update(state=SmsMessage.SENDING, attempts=SmsMessage.attempts + 1,
                                  next_attempt_at=now)
                .where((SmsMessage.id == row.id) & (SmsMessage.state == SmsMessage.QUEUED))
                .execute())


def send_due(provider, now: datetime, limit: int = PER_CYCLE) -> SendReport:
    """Send queued messages that are due through ``provider``; see the module's notes."""
    report = SendReport()
    close_abandoned(now)
    due = list(SmsMessage.select().where((SmsMessage.state == SmsMessage.QUEUED)
                                         & (SmsMessage.next_attempt_at <= now))
               .order_by(SmsMessage.next_attempt_at, SmsMessage.id).limit(limit))
    for row in due:
        if row.give_up_at is not None and row.give_up_at <= now:
            _close(row.id, now, state=SmsMessage.FAILED, failure_reason="TooLate")
            report.failed += 1
            continue
        if not _claim(row, now):
            continue
        attempts = row.attempts + 1
        try:
            outcome = provider.send(row.to, row.text)
        except SmsRetryable as exc:
            report.reachable = False if exc.network and report.reachable is None else report.reachable
            if attempts >= MAX_ATTEMPTS:
                _close(row.id, now, state=SmsMessage.FAILED, failure_reason="GaveUp",
                       last_error=str(exc)[:500])
                report.failed += 1
            else:
                when = now + timedelta(seconds=backoff_seconds(attempts - 1, RETRY_FIRST, RETRY_MAX))
                (SmsMessage.update(state=SmsMessage.QUEUED, next_attempt_at=when,
                                   last_error=str(exc)[:500])
                 .where(SmsMessage.id == row.id).execute())
                report.retrying += 1
            log.info("sms %s (%s): attempt %s failed, %s", row.id, row.kind, attempts, exc)
            if exc.network:
                break  # the link is down: the rest wait for the next cycle
            continue
        report.reachable = True
        if isinstance(outcome, Accepted):
            (SmsMessage.update(state=SmsMessage.SENT, provider_id=outcome.message_id or None,
                               cost_cents=cents(outcome.cost), parts=outcome.parts,
                               sent_at=now, last_error="")
             .where((SmsMessage.id == row.id) & (SmsMessage.state == SmsMessage.SENDING))
             .execute())
            report.sent += 1
        else:
            _close(row.id, now, state=SmsMessage.FAILED, failure_code=outcome.code,
                   failure_reason=outcome.reason[:200])
            log.warning("sms %s (%s) refused: %s (%s)", row.id, row.kind, outcome.reason,
                        outcome.code)
            report.failed += 1
    return report


def cents(cost: Decimal) -> int:
    """KES as hundredths of a shilling, rounded up (what the provider charged, or more)."""
    return int((cost * 100).to_integral_value(rounding="ROUND_CEILING"))


# --- delivery reports --------------------------------------------------------------------------

MAX_FIELD = 100
#: A delivery report has seven fields; more is not one.
MAX_FIELDS = 20


def delivery_url(config) -> str:
    """The delivery-report URL to give Africa's Talking: the hub's relay for a site behind
    NAT (``MPESA_RELAY``), else the site's public URL (``CALLBACK_BASE_URL``); "" for none."""
    secret = str(config.get("SMS_DELIVERY_SECRET") or "")
    relay = upstream.relay_base(config)
    if relay:
        return f"{relay[:-len('/mpesa')]}/sms/delivery/{secret}"
    root = str(config.get("CALLBACK_BASE_URL") or "").rstrip("/")
    return f"{root}/sms/delivery/{secret}" if root and secret else ""


def parse_form(body: bytes) -> dict[str, str]:
    """A relayed report's urlencoded body as fields (bounded; first value of each wins)."""
    fields: dict[str, str] = {}
    try:
        pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True,
                          max_num_fields=MAX_FIELDS)
    except ValueError:
        return {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def receive_delivery(config, secret: str, form, now: datetime) -> int:
    """A delivery report from the site's URL or the hub's relay; returns the HTTP status:
    404 for a wrong secret (nothing more said to a stranger), else 200 whatever the body
    (an unknown or malformed report changes nothing)."""
    expected = str(config.get("SMS_DELIVERY_SECRET") or "")
    if not expected or not hmac.compare_digest(str(secret).encode(), expected.encode()):
        return 404
    outcome = record_delivery(form, now)
    if outcome in ("unknown", "malformed"):
        log.info("sms delivery report ignored (%s)", outcome)
    return 200


def record_delivery(form, now: datetime | None = None) -> str:
    """A delivery report (form fields ``id``, ``status``, ``failureReason``); returns what
    was done: "delivered", "failed", "sent", "unknown" or "malformed". Never raises on
    what a stranger sends: an unknown id changes nothing."""
    now = now or utcnow()
    message_id = str(form.get("id") or "").strip()
    status = str(form.get("status") or "").strip()
    reason = str(form.get("failureReason") or "").strip()[:MAX_FIELD]
    if not message_id or len(message_id) > 80 or status not in DELIVERY_STATES:
        return "malformed"
    state = DELIVERY_STATES[status]
    # Only a sent message moves: a final word is never undone by a late "Buffered".
    where = (SmsMessage.provider_id == message_id) & (SmsMessage.state == SmsMessage.SENT)
    if state == SmsMessage.SENT:
        changed = SmsMessage.select().where(where).exists()
    elif state == SmsMessage.DELIVERED:
        changed = SmsMessage.update(state=state, finished_at=now).where(where).execute()
    else:
        changed = SmsMessage.update(state=state, finished_at=now,
                                    failure_reason=gsm7.to_gsm7(reason or status)).where(where).execute()
    return state if changed else "unknown"
