"""Time windows: packages sold and usable only at certain times (nights, weekends).

A package's window is kept in Nairobi time: weekdays (``window_days``, digits Mon=0 ..
Sun=6, '' for every day) and hours (``window_start`` / ``window_end`` in minutes after
midnight, None for the whole day; an end at or before the start crosses midnight, so
22:00-06:00 opened on Friday closes on Saturday morning). Windows that touch are one
window (Saturday and Sunday all day: Saturday 00:00 to Monday 00:00).

The agent enforces them with its own clock (``apply``, no uplink needed): at a window's
end it logs the customer out and disables the router user; at the next start it enables
it again; unused vouchers of the package follow it on the router, so the router's own
login page refuses them outside the window too. The portal refuses a login or a voucher
outside the window (``check_open``).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from ..errors import KibandaError, RouterError, RouterTrap, RouterUnreachable
from ..i18n import translate
from ..models import Grant, Package, Voucher, VoucherBatch
from ..timeutil import NAIROBI, to_nairobi

log = logging.getLogger(__name__)

DAY_MINUTES = 24 * 60
REFUSE, WAIT = "refuse", "wait"
SALE_RULES = (REFUSE, WAIT)
#: How far ahead a window is looked for (a weekly window always opens within 8 days).
_LOOKAHEAD_DAYS = 9


class OutsideWindow(KibandaError):
    """A windowed package bought or used outside its window: the page says when it opens."""

    status = 409


def windowed(package) -> bool:
    """True when ``package`` is only sold and usable in a window."""
    return bool(package.window_days) or package.window_start is not None


def _days(package) -> set[int]:
    return {int(d) for d in package.window_days} if package.window_days else set(range(7))


def _utc(local: datetime) -> datetime:
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def _spans(package, now: datetime) -> list[tuple[datetime, datetime]]:
    """Merged windows (naive UTC) from two days before ``now`` to a week and more after."""
    days = _days(package)
    start_min = package.window_start if package.window_start is not None else 0
    end_min = package.window_end if package.window_end is not None else 0
    length = (end_min - start_min) % DAY_MINUTES or DAY_MINUTES
    today = to_nairobi(now).date()
    spans: list[tuple[datetime, datetime]] = []
    for offset in range(-2, _LOOKAHEAD_DAYS):
        day = today + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=NAIROBI) + timedelta(minutes=start_min)
        span = (_utc(start), _utc(start + timedelta(minutes=length)))
        if spans and span[0] <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], span[1]))
        else:
            spans.append(span)
    return spans


def open_window(package, now: datetime) -> tuple[datetime, datetime] | None:
    """The window ``now`` is in (start, end as naive UTC), or None when it is closed."""
    for start, end in _spans(package, now):
        if start <= now < end:
            return start, end
    return None


def next_opening(package, now: datetime) -> datetime | None:
    """When the window next opens after ``now`` (None: no window, or always open)."""
    if not windowed(package):
        return None
    return next((start for start, _end in _spans(package, now) if start > now), None)


def is_open(package, now: datetime) -> bool:
    """True when ``package`` may be used at ``now`` (always, for a package without a window)."""
    return not windowed(package) or open_window(package, now) is not None


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_DAY_NAMES = [("Mondays", "Jumatatu"), ("Tuesdays", "Jumanne"), ("Wednesdays", "Jumatano"),
              ("Thursdays", "Alhamisi"), ("Fridays", "Ijumaa"), ("Saturdays", "Jumamosi"),
              ("Sundays", "Jumapili")]
_ONE_DAY = [("Monday", "Jumatatu"), ("Tuesday", "Jumanne"), ("Wednesday", "Jumatano"),
            ("Thursday", "Alhamisi"), ("Friday", "Ijumaa"), ("Saturday", "Jumamosi"),
            ("Sunday", "Jumapili")]


def _day_list(days: list[int], lang: str) -> str:
    names = [_DAY_NAMES[d][1 if lang == "sw" else 0] for d in days]
    joiner = " na " if lang == "sw" else " and "
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + joiner + names[-1]


def window_words(package, lang: str) -> str:
    """The window in plain words: "Every night 22:00 - 06:00", "Saturdays and Sundays"."""
    if not windowed(package):
        return ""
    days = sorted(_days(package))
    hours = "" if package.window_start is None else \
        f"{_clock(package.window_start)} - {_clock(package.window_end or 0)}"
    night = package.window_start is not None and (package.window_end or 0) <= package.window_start
    if len(days) == 7:
        if night:
            return translate("Every night {hours}", lang, hours=hours)
        return translate("Every day {hours}", lang, hours=hours)
    if days == [0, 1, 2, 3, 4]:
        named = translate("Monday to Friday", lang)
    else:
        named = _day_list(days, lang)
    if not hours:
        return named
    if night:
        return translate("{days}, nights {hours}", lang, days=named, hours=hours)
    return f"{named}, {hours}"


def when_words(moment: datetime, now: datetime, lang: str) -> str:
    """A coming time as a person says it: "22:00", "tomorrow 22:00", "Saturday 00:00"."""
    local, today = to_nairobi(moment), to_nairobi(now).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return clock
    if local.date() == today + timedelta(days=1):
        return translate("tomorrow {time}", lang, time=clock)
    return f"{_ONE_DAY[local.weekday()][1 if lang == 'sw' else 0]} {clock}"


def check_open(package, now: datetime, *, selling: bool = False) -> None:
    """Raise OutsideWindow when ``package`` is outside its window at ``now``.

    ``selling``: a purchase, refused only when the owner chose to refuse (else it is sold
    and starts at the next opening).
    """
    if is_open(package, now) or (selling and package.window_sale == WAIT):
        return
    opening = next_opening(package, now)
    values = {"window": window_words(package, "en"),
              "opens": when_words(opening, now, "en") if opening else ""}
    sw = {"window": window_words(package, "sw"),
          "opens": when_words(opening, now, "sw") if opening else ""}
    if selling:
        text = "This bundle is sold only at these times: {window}. Come back at {opens}."
    else:
        text = "This bundle works only at these times: {window}. It opens again at {opens}."
    raise OutsideWindow(f"package {package.id} outside its window at {now}",
                        en=translate(text, "en", **values), sw=translate(text, "sw", **sw))


def grant_start(package, now: datetime) -> datetime:
    """When a grant sold at ``now`` starts: now, or the next opening for a package sold
    ahead of its window."""
    if is_open(package, now):
        return now
    return next_opening(package, now) or now


def window_note(grant: Grant, now: datetime, lang: str) -> str:
    """For the customer's page: the window, and when it opens when it is closed now."""
    package = grant.package
    if not windowed(package):
        return ""
    words = window_words(package, lang)
    if is_open(package, now):
        return translate("Works: {window}.", lang, window=words)
    opening = next_opening(package, now)
    if opening is None or opening >= grant.expires_at:
        return translate("Works: {window}.", lang, window=words)
    return translate("Works: {window}. Closed now; it opens at {opens}.", lang, window=words,
                     opens=when_words(opening, now, lang))


def apply(gateway, now: datetime) -> int:
    """The agent's step: close and open windowed grants on the router; returns writes.

    At a window's end the customer is logged out (their active sessions removed) and the
    user disabled; at the next start it is enabled. ``Grant.router_disabled`` is what was
    last written, so a quiet cycle writes nothing.
    """
    writes = 0
    query = (Grant.select(Grant, Package).join(Package)
             .where((Grant.router_state == Grant.ON_ROUTER) & (Grant.expires_at > now)
                    & ((Package.window_days != "") | Package.window_start.is_null(False))))
    for grant in query:
        closed = not is_open(grant.package, now)
        if closed == grant.router_disabled:
            continue
        try:
            if closed:
                gateway.update_user(grant.username, disabled=True)
                gateway.kick_user(grant.username)
            else:
                gateway.update_user(grant.username, disabled=False)
        except RouterUnreachable as exc:
            log.info("time windows wait for the router: %s", exc.operator_message)
            break
        except RouterError as exc:
            log.warning("grant %s: window change refused: %s", grant.id, exc.operator_message)
            continue
        fields = {"router_disabled": closed}
        if closed:
            # Logged out: the page offers a login again when the window opens.
            fields.update(logged_in_at=None, login_ip="")
        Grant.update(**fields).where(Grant.id == grant.id).execute()
        writes += 1
    return writes + _apply_to_vouchers(gateway, now)


def _apply_to_vouchers(gateway, now: datetime) -> int:
    """Unused vouchers of a windowed package on the router: disabled while the window is
    closed, so the router's own login page refuses them too; enabled at the opening.
    ``Package.vouchers_disabled`` is what was last written for all of them."""
    writes = 0
    packages = Package.select().where((Package.window_days != "")
                                      | Package.window_start.is_null(False))
    for package in packages:
        closed = not is_open(package, now)
        if closed == package.vouchers_disabled:
            continue
        codes = [code for (code,) in Voucher.select(Voucher.code).join(VoucherBatch)
                 .where((Voucher.package == package.id) & (Voucher.state == Voucher.ON_ROUTER)
                        & VoucherBatch.voided_at.is_null()).tuples()]
        try:
            for code in codes:
                try:
                    gateway.update_user(code, disabled=closed)
                    writes += 1
                except RouterUnreachable:
                    raise
                except RouterTrap as exc:
                    # Gone meanwhile (used and removed, or lost in a reset: reconcile
                    # puts it back with the state of the hour).
                    log.info("voucher %s: window change refused: %s", code,
                             exc.operator_message)
            if closed:
                # One typed on the router's own page in the window and not yet seen by
                # the agent as used: its session ends with the window too.
                unused = set(codes)
                for row in gateway.active_sessions(proplist=".id,user"):
                    if str(row.get("user", "")) in unused:
                        gateway.kick(row[".id"])
        except RouterUnreachable as exc:
            log.info("time windows wait for the router: %s", exc.operator_message)
            break  # not marked: the next cycle does the whole package again
        Package.update(vouchers_disabled=closed).where(Package.id == package.id).execute()
    return writes
