"""The owner's side of SMS: their choices, the daily summary, router and uplink alerts,
and the SMS page's words (each failure said plainly, with what to do).

The outbox itself (queueing, sending, delivery reports, the customer's texts) is
``portal/ledger/sms.py``; the agent's ``sms`` step calls :func:`queue_owner_messages`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from peewee import fn

from ..clients import sms_configured
from ..errors import InvalidPhone, ValidationError
from ..i18n import N_, format_money, translate
from ..ledger import sms
from ..models import AuditLog, C2BPayment, Grant, Purchase, Setting, SmsMessage
from ..phone import normalise_phone
from ..timeutil import NAIROBI, utcnow
from .branding import branding
from .reports import local_midnight, takings

OWNER_PHONE, OWNER_LANGUAGE = "sms.owner_phone", "sms.owner_language"
SUMMARY_TIME, REMINDERS, ALERTS = "sms.summary_time", "sms.reminders", "sms.alerts"
ROUTER_DOWN, UPLINK_DOWN = "sms.router_down_since", "sms.uplink_down_since"
CHOICES = (OWNER_PHONE, OWNER_LANGUAGE, SUMMARY_TIME, REMINDERS, ALERTS)
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def record_configuration(config) -> bool:
    """Tell every process whether SMS is on (called by the portal and each agent cycle)."""
    on = sms_configured(config)
    sms.record_configuration(on, branding(config)["name"])
    return on


# --- the owner's choices ----------------------------------------------------------------------

@dataclass
class OwnerChoices:
    """What the owner chose on the SMS page."""

    phone: str = ""  # 2547XXXXXXXX, "" for none
    language: str = "en"
    summary_time: str = ""  # "HH:MM" in Nairobi, "" for no daily summary
    reminders: bool = True
    alerts: bool = True


def _stored(keys) -> dict[str, str]:
    return {row.key: row.value for row in Setting.select().where(Setting.key.in_(keys))}


def owner_choices(config=None) -> OwnerChoices:
    """The owner's SMS choices (defaults: reminders and alerts on, no summary)."""
    stored = _stored(CHOICES)
    default_lang = str((config or {}).get("DEFAULT_LANGUAGE") or "en")
    return OwnerChoices(phone=stored.get(OWNER_PHONE, ""),
                        language=stored.get(OWNER_LANGUAGE) or default_lang,
                        summary_time=stored.get(SUMMARY_TIME, ""),
                        reminders=stored.get(REMINDERS, "1") == "1",
                        alerts=stored.get(ALERTS, "1") == "1")


def _write(values: dict[str, str]) -> None:
    now = utcnow()
    for key, value in values.items():
        (Setting.insert(key=key, value=value, encrypted=False, updated_at=now)
         .on_conflict_replace().execute())


def save_choices(actor: str, address: str, *, phone: str, language: str, summary_time: str,
                 reminders: bool, alerts: bool) -> OwnerChoices:
    """Check and store the owner's choices; raises ValidationError (nothing changes)."""
    phone = (phone or "").strip()[:40]
    if phone:
        try:
            phone = normalise_phone(phone)
        except InvalidPhone:
            raise ValidationError("owner phone", field="phone",
                                  en=translate("Type a Kenyan mobile number, like 0712 345 678.", "en"),
                                  sw=translate("Type a Kenyan mobile number, like 0712 345 678.", "sw")) from None
    summary_time = (summary_time or "").strip()[:5]
    if summary_time and not _HHMM.match(summary_time):
        raise ValidationError("summary time", field="summary_time",
                              en=translate("Type the time as HH:MM, like 21:00.", "en"),
                              sw=translate("Type the time as HH:MM, like 21:00.", "sw"))
    if summary_time and not phone:
        raise ValidationError("summary without phone", field="phone",
                              en=translate("Type your phone number to get the daily summary.", "en"),
                              sw=translate("Type your phone number to get the daily summary.", "sw"))
    language = language if language in ("en", "sw") else "en"
    _write({OWNER_PHONE: phone, OWNER_LANGUAGE: language, SUMMARY_TIME: summary_time,
            REMINDERS: "1" if reminders else "0", ALERTS: "1" if alerts else "0"})
    AuditLog.write(actor, "sms.settings", "SMS settings changed", address,
                   summary=summary_time or "-")
    return owner_choices()


# --- the daily summary --------------------------------------------------------------------------

def _local(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc).astimezone(NAIROBI)


def summary_text(*, site: str, day: str, total: int, mpesa: int, mpesa_count: int,
                 vouchers: int, voucher_count: int, sessions: int, review: int,
                 lang: str) -> str:
    """The owner's end-of-day message."""
    text = translate(
        "{site} {day}: {total} today. M-Pesa {mpesa} ({mpesa_count}), vouchers {vouchers} "
        "({voucher_count}). Sessions {sessions}. To review {review}.", lang,
        site=sms.short_name(site, sms.SITE_CHARS), day=day, total=format_money(total, lang),
        mpesa=format_money(mpesa, lang), mpesa_count=mpesa_count,
        vouchers=format_money(vouchers, lang), voucher_count=voucher_count,
        sessions=sessions, review=review)
    return sms.short_name(text, 160)


def daily_summary(now: datetime, site: str, lang: str) -> str:
    """Today's summary at ``now`` (Nairobi's day so far)."""
    day = _local(now).date()
    start, end = local_midnight(day), local_midnight(day + timedelta(days=1))
    money = takings(start, end)
    sessions = Grant.select().where((Grant.first_login_at >= start)
                                    & (Grant.first_login_at < end)).count()
    review = (C2BPayment.select().where(C2BPayment.status == C2BPayment.REVIEW).count()
              + Purchase.select().where(Purchase.status == Purchase.REVIEW).count())
    return summary_text(site=site, day=day.strftime("%d/%m"), total=money.total,
                        mpesa=money.mpesa, mpesa_count=money.mpesa_count,
                        vouchers=money.vouchers, voucher_count=money.voucher_count,
                        sessions=sessions, review=review, lang=lang)


def queue_summary(now: datetime, choices: OwnerChoices, site: str) -> int:
    """Queue today's summary once the owner's time has come (once a day); returns 0 or 1."""
    match = _HHMM.match(choices.summary_time or "")
    if not match or not choices.phone:
        return 0
    local = _local(now)
    if local.time() < time(int(match.group(1)), int(match.group(2))):
        return 0
    day = local.date()
    end_of_day = local_midnight(day + timedelta(days=1))
    queued = sms.queue(f"{sms.SUMMARY}:{day.isoformat()}", sms.SUMMARY, choices.phone,
                       daily_summary(now, site, choices.language), now,
                       lang=choices.language, give_up_at=end_of_day + timedelta(hours=12))
    return 1 if queued else 0


# --- router and uplink alerts -------------------------------------------------------------------

def _since(key: str) -> datetime | None:
    row = Setting.get_or_none(Setting.key == key)
    try:
        return datetime.strptime(row.value, "%Y-%m-%dT%H:%M:%S") if row else None
    except ValueError:
        return None


def _mark(key: str, moment: datetime | None) -> None:
    if moment is None:
        Setting.delete().where(Setting.key == key).execute()
    else:
        _write({key: moment.strftime("%Y-%m-%dT%H:%M:%S")})


def router_alert_text(*, site: str, since: datetime, minutes: int, lang: str) -> str:
    """The router has not answered for a while."""
    return sms.short_name(translate(
        "{site}: the router has not answered since {since} ({minutes} min). Check its power "
        "and cables. Sales are kept.", lang, site=sms.short_name(site, sms.SITE_CHARS),
        since=sms.local_stamp(since), minutes=minutes), 160)


def uplink_alert_text(*, site: str, since: datetime, back: datetime, lang: str) -> str:
    """The internet link was down and is back (an alert can only leave once it is)."""
    seconds = int((back - since).total_seconds())
    return sms.short_name(translate(
        "{site}: the internet link was down for {duration}, from {since} to {back}. It works "
        "again.", lang, site=sms.short_name(site, sms.SITE_CHARS),
        duration=sms.time_words(seconds, lang), since=sms.local_stamp(since),
        back=sms.local_stamp(back)), 160)


def watch_links(now: datetime, config, choices: OwnerChoices, site: str, *,
                router_ok: bool | None, uplink_ok: bool | None) -> int:
    """Note when the router or the uplink went down or came back; queue the owner's alert
    when one has been down longer than ``SMS_ALERT_AFTER_MINUTES``; returns alerts queued.

    ``None``: not known this cycle (nothing changes)."""
    after = timedelta(minutes=max(1, int(config.get("SMS_ALERT_AFTER_MINUTES") or 15)))
    send = choices.alerts and bool(choices.phone)
    queued = 0
    router_since = _since(ROUTER_DOWN)
    if router_ok is False and router_since is None:
        _mark(ROUTER_DOWN, now)
    elif router_ok is True and router_since is not None:
        _mark(ROUTER_DOWN, None)
    elif router_ok is False and send and now - router_since >= after:
        minutes = int((now - router_since).total_seconds() // 60)
        text = router_alert_text(site=site, since=router_since, minutes=minutes,
                                 lang=choices.language)
        key = f"{sms.ALERT}:router:{router_since.isoformat()}"
        queued += 1 if sms.queue(key, sms.ALERT, choices.phone, text, now,
                                 lang=choices.language) else 0
    uplink_since = _since(UPLINK_DOWN)
    if uplink_ok is False and uplink_since is None:
        _mark(UPLINK_DOWN, now)
    elif uplink_ok is True and uplink_since is not None:
        _mark(UPLINK_DOWN, None)
        if send and now - uplink_since >= after:
            text = uplink_alert_text(site=site, since=uplink_since, back=now,
                                     lang=choices.language)
            key = f"{sms.ALERT}:uplink:{uplink_since.isoformat()}"
            queued += 1 if sms.queue(key, sms.ALERT, choices.phone, text, now,
                                     lang=choices.language) else 0
    return queued


def queue_owner_messages(now: datetime, config, *, router_ok: bool | None,
                         uplink_ok: bool | None) -> int:
    """The agent's part each cycle: reminders, the summary and alerts; returns how many."""
    site = sms.site_name()
    if site is None:
        return 0
    choices = owner_choices(config)
    queued = sms.queue_reminders(now) if choices.reminders else 0
    queued += queue_summary(now, choices, site)
    queued += watch_links(now, config, choices, site, router_ok=router_ok, uplink_ok=uplink_ok)
    return queued


# --- the SMS page ------------------------------------------------------------------------------

#: A failure's words for the owner, by the provider's reason (its word stays in brackets).
REASONS = {
    "UserInBlacklist": N_("The number blocked promotional messages (UserInBlacklist): ask "
                          "Africa's Talking for a transactional sender ID."),
    "UserInBlackList": N_("The number blocked promotional messages (UserInBlacklist): ask "
                          "Africa's Talking for a transactional sender ID."),
    "InvalidSenderId": N_("The sender ID is not registered for your Africa's Talking account "
                          "(InvalidSenderId): ask your technician to fix SMS_SENDER_ID."),
    "InvalidPhoneNumber": N_("The phone number is not valid (InvalidPhoneNumber)."),
    "UnsupportedNumberType": N_("Africa's Talking cannot send to this kind of number "
                                "(UnsupportedNumberType)."),
    "InsufficientBalance": N_("Your Africa's Talking account has no credit left "
                              "(InsufficientBalance): top it up."),
    "CouldNotRoute": N_("Africa's Talking could not reach this network (CouldNotRoute)."),
    "DoNotDisturbRejection": N_("The customer turned on Do Not Disturb "
                                "(DoNotDisturbRejection)."),
    "AbsentSubscriber": N_("The phone was off or out of reach (AbsentSubscriber)."),
    "Unknown": N_("The agent stopped while sending: the message may or may not have arrived. "
                  "It is not sent again."),
    "TooLate": N_("Not sent in time, so not sent at all (the package had ended)."),
    "GaveUp": N_("Africa's Talking could not be reached after many tries."),
}


def failure_words(message: SmsMessage, lang: str) -> str:
    """Why a message failed, or why it is waiting, in plain words."""
    if message.state == SmsMessage.FAILED:
        reason = message.failure_reason or ""
        if reason in REASONS:
            return translate(REASONS[reason], lang)
        if message.provider_id:  # accepted, then the delivery report said no
            return translate("The phone did not receive it ({reason}).", lang,
                             reason=reason or "-")
        return translate("Africa's Talking refused it ({reason}).", lang, reason=reason or "-")
    if message.state == SmsMessage.QUEUED and message.last_error:
        return translate("Waiting to try again: {error}", lang, error=message.last_error[:120])
    return ""


@dataclass
class SmsTotals:
    """What SMS cost, for the page."""

    cost_cents: int
    month_cost_cents: int
    sent: int
    failed: int
    no_credit: bool


def totals(now: datetime) -> SmsTotals:
    """All-time and this month's cost; whether the last refusal was for want of credit."""
    month_start = local_midnight(_local(now).date().replace(day=1))
    cost = SmsMessage.select(fn.COALESCE(fn.SUM(SmsMessage.cost_cents), 0)).scalar()
    month = (SmsMessage.select(fn.COALESCE(fn.SUM(SmsMessage.cost_cents), 0))
             .where(SmsMessage.sent_at >= month_start).scalar())
    sent = SmsMessage.select().where(SmsMessage.state.in_(
        (SmsMessage.SENT, SmsMessage.DELIVERED))).count()
    failed = SmsMessage.select().where(SmsMessage.state == SmsMessage.FAILED).count()
    last_refusal = (SmsMessage.select(SmsMessage.failure_reason)
                    .where(SmsMessage.state == SmsMessage.FAILED)
                    .order_by(SmsMessage.id.desc()).first())
    return SmsTotals(int(cost), int(month), sent, failed,
                     bool(last_refusal and last_refusal.failure_reason == "InsufficientBalance"))


def recent(limit: int = 100):
    """The latest messages, newest first."""
    return SmsMessage.select().order_by(SmsMessage.id.desc()).limit(limit)


def shillings(cents: int) -> str:
    """Hundredths of a shilling as "KES 12.40"."""
    return f"KES {cents // 100:,}.{cents % 100:02d}"
