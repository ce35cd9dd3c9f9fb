"""Abuse limits: how often a phone or a device may get a push, or try a code.

Keyed on the device the router handed over and, for pushes, on the phone and amount
(Daraja refuses the same amount to the same phone within 2 minutes anyway).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from ..errors import RateLimited
from ..models import CodeAttempt, Purchase

PUSH_REPEAT_WINDOW = timedelta(minutes=2)  # Daraja refuses the same amount again (code 17)
DEVICE_PUSH_LIMIT, DEVICE_PUSH_WINDOW = 5, timedelta(minutes=10)
CODE_ATTEMPT_LIMIT, CODE_ATTEMPT_WINDOW = 10, timedelta(minutes=10)


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


def normalise_mac(mac: str | None) -> str:
    """A device's MAC as the router prints it (upper case), '' when none was given."""
    return (mac or "").strip().upper()


def _device_key(mac: str, ip: str) -> str:
    return normalise_mac(mac) or (ip or "").strip()


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


def record_attempt(mac: str, ip: str, ok: bool, now: datetime) -> None:
    """Count one code attempt from this device (``ok`` False for a wrong code)."""
    CodeAttempt.create(device=_device_key(mac, ip), at=now, ok=ok)
