"""Codes that open the internet: vouchers, access codes and M-Pesa receipts.

Each turns into a logged-in device through the same grant machinery as a payment; every
wrong guess counts against the limits of the request's address, of the device when the
router confirms it, and of the site (:mod:`.limits`).
"""
from __future__ import annotations

import hmac
import re
from datetime import datetime, timedelta
from typing import Callable

from ..errors import (
    AccessExpired, DeviceLimitReached, DeviceLoginFailed, NotFound, RouterError,
    SessionLimitReached, ValidationError,
)
from ..models import C2BPayment, Grant, Purchase, Voucher, db
from . import devices, events, grants, reconcile, windows
from .grants import grant_for
from .limits import CodeTry, Device, counted_try, identify

_RECEIPT = re.compile(r"^[A-Z0-9]{10}$")


def normalise_code(text: str) -> str:
    """A typed code without spaces or dashes, upper-case."""
    return re.sub(r"[\s\-]", "", str(text or "")).upper()[:40]


def _wrong_code(this_try: CodeTry, typed: str) -> ValidationError:
    this_try.wrong = True
    return ValidationError(f"wrong code {typed!r}", field="code",
                           en="That code is not valid. Check it and try again.",
                           sw="Msimbo huo si sahihi. Uangalie ujaribu tena.")


def _login(grant: Grant, gateway, mac: str, ip: str, now: datetime) -> Grant:
    """Log this device in with ``grant``; raises DeviceLoginFailed or DeviceLimitReached."""
    if grants.grant_time_left(grant, now) == 0 or grant.router_state == Grant.REMOVED:
        raise AccessExpired(f"grant {grant.id} expired at {grant.expires_at}")
    devices.take_place(grant, mac, gateway, now)
    try:
        grants.login_device(grant, gateway, ip, mac, now)
    except SessionLimitReached as exc:
        raise DeviceLimitReached(f"grant {grant.id}: {exc.router_message}") from exc
    except RouterError as exc:
        raise DeviceLoginFailed(f"grant {grant.id}: {exc.operator_message}",
                                grant=Grant.get_by_id(grant.id)) from exc
    return Grant.get_by_id(grant.id)


def redeem_voucher(code, *, mac, ip, gateway, now, source="") -> Grant:
    """Log this device in with a voucher; the first use starts its validity.

    ``source`` is the request's own address; ``mac`` and ``ip`` are what the phone
    claims, checked with the router before the limits are applied (:mod:`.limits`).
    """
    device = identify(gateway, mac, ip, source)
    with counted_try(device, now) as this_try:
        return _redeem(normalise_code(code), device, this_try, gateway, now)


def _redeem(typed: str, device: Device, this_try: CodeTry, gateway, now: datetime) -> Grant:
    voucher = Voucher.get_or_none(Voucher.code == typed) if typed else None
    if voucher is None or not hmac.compare_digest(voucher.code.encode(), typed.encode()):
        raise _wrong_code(this_try, typed)
    if voucher.state == Voucher.VOID:
        this_try.wrong = True
        raise ValidationError(f"voucher {voucher.id} is void", field="code",
                              en="This voucher has been cancelled. Please ask the staff.",
                              sw="Vocha hii imefutwa. Tafadhali uliza wahudumu.")
    if voucher.state == Voucher.EXPIRED or (voucher.expires_at and voucher.expires_at <= now):
        raise AccessExpired(f"voucher {voucher.id} expired",
                            en="This voucher has expired. Please buy a new one.",
                            sw="Muda wa vocha hii umeisha. Tafadhali nunua nyingine.")
    if voucher.state in (Voucher.NEW, Voucher.ON_ROUTER):
        # A night or weekend voucher is not started outside its window: its clock would
        # run while it cannot be used. The page says when it opens; the code stays unused.
        windows.check_open(voucher.package, now)
        grant = start_voucher(voucher, now, login_mac=device.mac, login_ip=device.ip)
        if grant is not None:
            return grants.provision_grant(grant.id, gateway, now)
    grant = Grant.get_or_none(Grant.voucher == voucher.id)
    if grant is None:
        raise NotFound(f"voucher {voucher.id} is used but has no grant")
    return _login(grant, gateway, device.mac, device.ip, now)


def start_voucher(voucher: Voucher, first_login_at: datetime, *, login_mac: str = "",
                  login_ip: str = "", on_router: bool = False) -> Grant | None:
    """A voucher's first use: its clock starts, it becomes a grant, and the "voucher.used"
    and "sale" events are written, all in one transaction and only once (None when the
    voucher was already used or voided meanwhile).

    ``on_router``: the router already has the user and logged it in (the customer used
    the router's own login page), so nothing is to be pushed or logged in.
    """
    package = voucher.package
    expires = first_login_at + timedelta(seconds=package.validity_seconds)
    with db.atomic():
        first = (Voucher.update(state=Voucher.USED, first_login_at=first_login_at,
                                expires_at=expires)
                 .where((Voucher.id == voucher.id)
                        & Voucher.state.in_((Voucher.NEW, Voucher.ON_ROUTER))).execute())
        if not first:
            return None
        grant = grants.create_grant(
            package, Grant.VOUCHER, first_login_at, voucher=voucher, username=voucher.code,
            login_mac="" if on_router else login_mac, login_ip="" if on_router else login_ip,
            expires_at=expires, router_state=Grant.ON_ROUTER if on_router else Grant.PENDING)
        if on_router:
            (Grant.update(first_login_at=first_login_at, logged_in_at=first_login_at)
             .where(Grant.id == grant.id).execute())
        events.record_event(events.VOUCHER_USED, first_login_at,
                            code_hash=events.code_hash(voucher.code), package=package.name_en,
                            first_login_at=events.iso(first_login_at))
    return grant


def reconnect(code, *, mac, ip, gateway, now, source="",
              lookup: Callable[[str], str] | None = None) -> Grant:
    """Log this device in again with an access code, an M-Pesa receipt or a used voucher
    (``source``, ``mac`` and ``ip`` as for :func:`redeem_voucher`).

    ``lookup(receipt)`` asks M-Pesa about a receipt Kibanda does not know yet ("I already
    paid": :func:`.reconcile.lookup_receipt`) and settles it when found; the try counts
    against the limits like any code.
    """
    device = identify(gateway, mac, ip, source)
    with counted_try(device, now) as this_try:
        return _reconnect(normalise_code(code), device, this_try, gateway, now, lookup)


def _by_receipt(typed: str) -> Grant | None:
    purchase = Purchase.get_or_none(Purchase.receipt == typed)
    if purchase is not None and hmac.compare_digest(purchase.receipt.encode(), typed.encode()):
        return grant_for(purchase)
    return None


def _in_review(typed: str) -> None:
    """A real receipt whose payment a person must look at: say so (it was no guess)."""
    payment = C2BPayment.get_or_none(C2BPayment.trans_id == typed)
    if payment is not None and payment.status == C2BPayment.REVIEW:
        raise ValidationError(
            f"receipt {typed} is in review: {payment.reason}", field="code",
            en="We found your payment, but the staff must check it before you connect. "
               "Please show them your M-Pesa message.",
            sw="Tumeona malipo yako, lakini wahudumu lazima wayaangalie kabla hujaunganishwa. "
               "Tafadhali waonyeshe ujumbe wako wa M-Pesa.")


def _reconnect(typed: str, device: Device, this_try: CodeTry, gateway, now: datetime,
               lookup: Callable[[str], str] | None = None) -> Grant:
    grant, asked = None, False
    if typed:
        grant = Grant.get_or_none(Grant.username == typed)
        if grant is None and _RECEIPT.match(typed):
            grant = _by_receipt(typed)
            if grant is None:
                _in_review(typed)
            answer = lookup(typed) if grant is None and lookup is not None else None
            if answer == reconcile.FOUND:
                grant = _by_receipt(typed)
                if grant is None:
                    _in_review(typed)
            elif answer == reconcile.ASKED:
                this_try.wrong = True  # each question to M-Pesa counts as a guess
                raise ValidationError(
                    f"receipt {typed}: Transaction Status asked", field="code",
                    en="We are checking this M-Pesa code with M-Pesa. Please try again in "
                       "a minute.",
                    sw="Tunaithibitisha namba hii na M-Pesa. Tafadhali jaribu tena baada "
                       "ya dakika moja.")
            asked = answer == reconcile.NOT_FOUND
        elif grant is not None and not hmac.compare_digest(grant.username.encode(),
                                                           typed.encode()):
            grant = None
    if grant is None:
        if typed and Voucher.get_or_none(Voucher.code == typed) is not None:
            return _redeem(typed, device, this_try, gateway, now)
        if asked:
            this_try.wrong = True
            raise ValidationError(
                f"receipt {typed} not found at M-Pesa", field="code",
                en="We could not find an M-Pesa payment with that code. Check the code in "
                   "your M-Pesa message and try again.",
                sw="Hatukupata malipo ya M-Pesa yenye namba hiyo. Angalia namba kwenye "
                   "ujumbe wako wa M-Pesa ujaribu tena.")
        raise _wrong_code(this_try, typed)
    return _login(grant, gateway, device.mac, device.ip, now)


def held_grant(code, *, mac, ip, gateway, now, source="") -> Grant:
    """The grant whose access code was typed (a top-up proves the grant this way), without
    logging anything in; a wrong code counts against the limits like any other."""
    device = identify(gateway, mac, ip, source)
    typed = normalise_code(code)
    with counted_try(device, now) as this_try:
        grant = Grant.get_or_none(Grant.username == typed) if typed else None
        if grant is None or not hmac.compare_digest(grant.username.encode(), typed.encode()):
            raise _wrong_code(this_try, typed)
        return grant
