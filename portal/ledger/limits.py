"""Abuse limits: how often a phone may be sent a push, and how often codes may be guessed.

Every limit is keyed on something the client cannot choose:

- the request's own address (``source``, the web's ``request.remote_addr``). Behind the
  hotspot's NAT a whole venue may share one, so on its own it never locks a confirmed
  phone out: past its threshold it only slows every device behind it down;
- a *verified* device: the MAC a phone claims is the one the router's hotspot host table
  lists for the address it claims (:func:`identify`). A claim that does not match, empty
  fields, or a router that cannot be asked make an *unverified* device: never no limit,
  never refused just because the router is down, but the strictest limit there is;
- the whole site: past its threshold every wrong guess (every push) slows down, and
  unverified devices get none; a verified device still gets its turn, so a right code
  still works.

Pushes are also limited per phone (a victim's phone is not flooded with prompts) and per
phone and amount (one prompt at a time: while a push of that amount to that phone is still
unanswered, it is not sent again). Only pushes that were not paid count: a customer buying
for a second phone, or again tomorrow, is not an attacker; a cancelled or wrong-PIN
attempt counts, and so does a prompt still waiting for an answer.
The numbers and what they mean for an attacker are in docs/venue-owners.md.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Case, fn

from ..errors import RateLimited, RouterError
from ..models import CodeAttempt, Purchase, db

log = logging.getLogger(__name__)

#: Every count below is over this sliding window.
WINDOW = timedelta(minutes=10)
#: While a source address or the site is busy, a verified device waits this long after
#: its last wrong code (its last push) before the next one.
SLOW_GAP = timedelta(minutes=5)


@dataclass(frozen=True)
class Limits:
    """How many events (wrong codes, or pushes) each key may have in ``WINDOW``."""

    device: int             # one verified device
    unverified_source: int  # every unverified device behind one source address, together
    unverified_site: int    # every unverified device of the site, together
    source_busy: int        # one source address: past this, its devices slow down
    site_busy: int          # the whole site: past this, every device slows down


CODE_LIMITS = Limits(device=10, unverified_source=3, unverified_site=10, source_busy=20,
                     site_busy=30)
PUSH_LIMITS = Limits(device=5, unverified_source=3, unverified_site=10, source_busy=30,
                     site_busy=60)
#: Pushes to one phone, whatever the amount (one victim, eight prices, once).
PHONE_PUSH_LIMIT = 3
PUSH_REPEAT_WINDOW = timedelta(minutes=2)  # Daraja refuses the same amount again (code 17)

#: How long the router's answer about one address is reused (a burst costs one lookup).
HOST_CACHE_SECONDS = 5.0
_HOST_CACHE_SIZE = 4096
#: The host cache's clock (a test may move it).
monotonic = time.monotonic


# --- who is asking ----------------------------------------------------------------------

def normalise_mac(mac: str | None) -> str:
    """A device's MAC as the router prints it (upper case), '' when none was given."""
    return (mac or "").strip().upper()


@dataclass(frozen=True)
class Device:
    """What a phone claims (``mac``, ``ip``), the request's own address, and whether the
    router confirmed the claim."""

    mac: str = ""
    ip: str = ""
    source: str = ""
    verified: bool = False

    @property
    def key(self) -> str:
        """What a verified device's limit is keyed on ('' for an unverified one)."""
        return self.mac if self.verified else ""


class _HostCache:
    """The router's recent answers about addresses, and whether it could not be asked."""

    def __init__(self):
        self.lock = threading.Lock()
        self.answers: dict[str, tuple[float, frozenset]] = {}
        self.down_until = 0.0


_HOST_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_HOST_CACHES_LOCK = threading.Lock()


def _host_cache(gateway) -> _HostCache:
    with _HOST_CACHES_LOCK:
        try:
            cache = _HOST_CACHES.get(gateway)
            if cache is None:
                cache = _HOST_CACHES[gateway] = _HostCache()
        except TypeError:  # a gateway that cannot be weakly referenced: no reuse
            cache = _HostCache()
        return cache


def _router_macs(gateway, ip: str) -> frozenset:
    """The MACs the router lists at ``ip`` (none when it has none, or cannot be asked)."""
    cache = _host_cache(gateway)
    now = monotonic()
    with cache.lock:
        if cache.down_until > now:
            return frozenset()
        cached = cache.answers.get(ip)
        if cached is not None and cached[0] > now:
            return cached[1]
    try:
        rows = gateway.hotspot_hosts(ip)
    except RouterError as exc:
        log.info("cannot check the device at %s with the router: %s", ip,
                 exc.operator_message)
        with cache.lock:
            cache.down_until = now + HOST_CACHE_SECONDS
        return frozenset()
    macs = frozenset(normalise_mac(row.get("mac-address")) for row in rows
                     if row.get("address") == ip)
    with cache.lock:
        if len(cache.answers) >= _HOST_CACHE_SIZE:
            cache.answers = {k: v for k, v in cache.answers.items() if v[0] > now}
            if len(cache.answers) >= _HOST_CACHE_SIZE:
                cache.answers.clear()
        cache.answers[ip] = (now + HOST_CACHE_SECONDS, macs)
    return macs


def identify(gateway, mac: str | None, ip: str | None, source: str | None) -> Device:
    """The device behind a request: verified when the router's hotspot host table lists
    the claimed MAC at the claimed address. Never raises for a router that is down."""
    mac, ip = normalise_mac(mac), (ip or "").strip()
    mac, ip = (mac if len(mac) <= 17 else ""), (ip if len(ip) <= 45 else "")  # not a claim
    source = (source or "").strip()[:45]
    verified = bool(gateway is not None and mac and ip and mac in _router_macs(gateway, ip))
    return Device(mac=mac, ip=ip, source=source, verified=verified)


# --- the customer's words -----------------------------------------------------------------

def _minutes(seconds: float) -> int:
    return max(1, -(-int(seconds) // 60))


def _plural(minutes: int) -> str:
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _device_wait(operator: str, seconds: float) -> RateLimited:
    minutes = _minutes(seconds)
    return RateLimited(
        operator,
        en=f"Too many attempts from this device. Please wait {_plural(minutes)} and try "
           f"again.",
        sw=f"Majaribio mengi mno kutoka kifaa hiki. Tafadhali subiri dakika {minutes} "
           f"ujaribu tena.")


def _unverified_wait(operator: str, seconds: float) -> RateLimited:
    minutes = _minutes(seconds)
    return RateLimited(
        operator,
        en=f"Too many attempts. Please wait {_plural(minutes)} and try again, or open "
           f"this page again from the WiFi login page.",
        sw=f"Majaribio mengi mno. Tafadhali subiri dakika {minutes} ujaribu tena, au "
           f"fungua ukurasa huu tena kupitia ukurasa wa kuingia wa WiFi.")


_BUSY = {
    "wrong codes": ("Too many wrong codes on this WiFi right now",
                    "Misimbo mingi mno isiyo sahihi kwenye WiFi hii sasa hivi"),
    "pushes": ("Too many payment requests on this WiFi right now",
               "Maombi mengi mno ya malipo kwenye WiFi hii sasa hivi"),
}


def _busy_wait(kind: str, operator: str, seconds: float, verified: bool) -> RateLimited:
    en, sw = _BUSY[kind]
    minutes = _minutes(seconds)
    if verified:
        return RateLimited(
            operator,
            en=f"{en}, so each device must wait between tries. Please wait "
               f"{_plural(minutes)} and try again.",
            sw=f"{sw}, kwa hivyo kila kifaa kinasubiri kati ya majaribio. Tafadhali subiri "
               f"dakika {minutes} ujaribu tena.")
    return RateLimited(
        operator,
        en=f"{en}. Please open this page again from the WiFi login page, or wait "
           f"{_plural(minutes)} and try again.",
        sw=f"{sw}. Tafadhali fungua ukurasa huu tena kupitia ukurasa wa kuingia wa WiFi, "
           f"au subiri dakika {minutes} ujaribu tena.")


# --- counting -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Events:
    """The rows one kind of limit counts: wrong codes, or pushes."""

    kind: str
    model: type
    at: object
    base: object         # which rows count at all (None: every row)
    mine: object         # rows of this verified device (None: not verified)
    unverified: object   # rows of unverified devices
    source: object       # rows from this source address

    def where(self, since: datetime, *conditions):
        where = self.at > since
        if self.base is not None:
            where &= self.base
        for condition in conditions:
            where &= condition
        return where

    def counts(self, since: datetime) -> dict:
        """How many rows of each key in the window, in one query."""
        def rows(condition):
            return fn.COALESCE(fn.SUM(Case(None, [(condition, 1)], 0)), 0)

        columns = [fn.COUNT(self.model.id).alias("site"), rows(self.source).alias("source"),
                   rows(self.unverified & self.source).alias("unverified_source"),
                   rows(self.unverified).alias("unverified_site")]
        if self.mine is not None:
            columns.append(rows(self.mine).alias("device"))
        return self.model.select(*columns).where(self.where(since)).dicts().get()

    def times(self, since: datetime, *conditions) -> list[datetime]:
        """When the rows of a key happened, oldest first (only asked when refusing)."""
        query = (self.model.select(self.at).where(self.where(since, *conditions))
                 .order_by(self.at))
        return [getattr(row, self.at.name) for row in query]


def _until_under(events: _Events, since: datetime, now: datetime, limit: int,
                 *conditions) -> float:
    """Seconds until fewer than ``limit`` rows of a key are left in the window."""
    times = events.times(since, *conditions)
    if len(times) < limit:
        return 0.0
    return (times[len(times) - limit] + WINDOW - now).total_seconds()


def _check(events: _Events, limits: Limits, device: Device, now: datetime) -> None:
    since = now - WINDOW
    counts = events.counts(since)
    what = f"{events.kind} from {device.source or 'no address'}"
    if device.verified:
        if counts["device"] >= limits.device:
            raise _device_wait(
                f"device {device.key}: {counts['device']} {events.kind} in 10 minutes",
                _until_under(events, since, now, limits.device, events.mine))
    else:
        if counts["unverified_source"] >= limits.unverified_source:
            raise _unverified_wait(
                f"unverified device ({device.mac or '-'} at {device.ip or '-'}): "
                f"{counts['unverified_source']} unverified {what} in 10 minutes",
                _until_under(events, since, now, limits.unverified_source,
                             events.unverified & events.source))
        if counts["unverified_site"] >= limits.unverified_site:
            raise _busy_wait(
                events.kind, f"site: {counts['unverified_site']} unverified {events.kind} "
                             f"in 10 minutes",
                _until_under(events, since, now, limits.unverified_site, events.unverified),
                verified=False)
    busy = []
    if counts["site"] >= limits.site_busy:
        busy.append((limits.site_busy, ()))
    if counts["source"] >= limits.source_busy:
        busy.append((limits.source_busy, (events.source,)))
    if not busy:
        return
    operator = (f"busy: {counts['site']} {events.kind} on the site, {counts['source']} "
                f"{what} in 10 minutes")
    if not device.verified:
        raise _busy_wait(events.kind, operator + "; unverified device",
                         max(_until_under(events, since, now, limit, *conditions)
                             for limit, conditions in busy), verified=False)
    last = events.times(now - SLOW_GAP, events.mine)
    if last:
        raise _busy_wait(events.kind, operator + f"; device {device.key} waits",
                         (last[-1] + SLOW_GAP - now).total_seconds(), verified=True)


# --- pushes ---------------------------------------------------------------------------------

#: Pushes the limits count: every attempt that did not end paid.
_UNPAID = Purchase.status != Purchase.PAID
#: Pushes M-Pesa has not given its final word on: one of these holds a repeat back.
_OPEN = (Purchase.PUSHING, Purchase.PENDING, Purchase.UNANSWERED)


def _push_events(device: Device) -> _Events:
    mine = ((Purchase.verified == True) & (Purchase.mac == device.key)  # noqa: E712
            if device.verified else None)
    return _Events("pushes", Purchase, Purchase.created_at, _UNPAID, mine,
                   Purchase.verified == False, Purchase.source == device.source)  # noqa: E712


def check_push_limits(phone: str, amount: int, device: Device, now: datetime) -> None:
    """Raise RateLimited when this phone, this device, its address or the site may not
    get another push yet. Call inside the transaction that records the push.

    A push of the same amount to the same phone is held back only while it is still open
    (M-Pesa has not answered): after a cancel or a wrong PIN the customer may try again
    at once, and M-Pesa itself says so if it wants them to wait (ResultCode 17)."""
    recent = (Purchase.select().where((Purchase.phone == phone) & (Purchase.amount == amount)
                                      & Purchase.status.in_(_OPEN)
                                      & (Purchase.created_at > now - PUSH_REPEAT_WINDOW))
              .order_by(Purchase.created_at.desc()).first())
    if recent is not None:
        wait = (recent.created_at + PUSH_REPEAT_WINDOW - now).total_seconds()
        minutes = _minutes(wait)
        raise RateLimited(
            f"{phone} was asked for KES {amount} at {recent.created_at}",
            en=f"We already sent a payment request for this amount to this phone. Check your "
               f"phone, or wait {_plural(minutes)} and try again.",
            sw=f"Tayari tumetuma ombi la malipo la kiasi hiki kwa simu hii. Angalia simu "
               f"yako, au subiri dakika {minutes} ujaribu tena.")
    to_phone = [row.created_at for row in Purchase.select(Purchase.created_at).where(
        (Purchase.phone == phone) & _UNPAID & (Purchase.created_at > now - WINDOW))
        .order_by(Purchase.created_at)]
    if len(to_phone) >= PHONE_PUSH_LIMIT:
        wait = (to_phone[-PHONE_PUSH_LIMIT] + WINDOW - now).total_seconds()
        minutes = _minutes(wait)
        raise RateLimited(
            f"{phone}: {len(to_phone)} pushes in 10 minutes",
            en=f"We already sent {len(to_phone)} payment requests to this phone. Check your "
               f"phone, or wait {_plural(minutes)} and try again.",
            sw=f"Tayari tumetuma maombi {len(to_phone)} ya malipo kwa simu hii. Angalia simu "
               f"yako, au subiri dakika {minutes} ujaribu tena.")
    _check(_push_events(device), PUSH_LIMITS, device, now)


# --- codes ------------------------------------------------------------------------------------

def _code_events(device: Device) -> _Events:
    mine = (CodeAttempt.device == device.key) if device.verified else None
    return _Events("wrong codes", CodeAttempt, CodeAttempt.at,
                   CodeAttempt.ok == False, mine,  # noqa: E712
                   CodeAttempt.device == "", CodeAttempt.source == device.source)


def check_code_attempts(device: Device, now: datetime) -> None:
    """Raise RateLimited when this device, its address or the site may not try another
    code yet (only wrong codes count)."""
    _check(_code_events(device), CODE_LIMITS, device, now)


class CodeTry:
    """One code try in progress; the code's checker sets ``wrong`` when it was wrong."""

    wrong = False


@contextmanager
def counted_try(device: Device, now: datetime):
    """Check the limits and count this try as a wrong code, in one write transaction,
    before the code is looked at: tries sent at once cannot all pass the check. The row
    (the request's address and the verified device, nothing more) is taken back unless
    the code turned out wrong, so right codes leave nothing behind."""
    with db.atomic("IMMEDIATE"):
        check_code_attempts(device, now)
        row = CodeAttempt.create(device=device.key, source=device.source, at=now, ok=False)
    this_try = CodeTry()
    try:
        yield this_try
    finally:
        if not this_try.wrong:
            CodeAttempt.delete().where(CodeAttempt.id == row.id).execute()
