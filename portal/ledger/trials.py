"""The free trial (optional per site): N minutes free, once per phone number and once per
device per Nairobi day, no payment.

The owner turns it on with a number of minutes and the package whose speed and devices
it uses (Setting rows, see ``portal/venue/trial.py``). The device is the router's word,
never the phone's (``limits.identify`` against the hotspot host table): a device the
router does not confirm gets no trial. Every refused request counts like a wrong code
(``limits.counted_try``: per device, per address, site-wide), so trying many phone
numbers from one place soon stops. The trial is a Grant with source "trial" and no sale.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from peewee import IntegrityError

from ..errors import ValidationError
from ..models import Grant, Package, Setting, TrialClaim, db
from ..phone import normalise_phone
from ..timeutil import to_nairobi
from . import grants
from .limits import counted_try, identify

MINUTES_KEY, PACKAGE_KEY = "trial_minutes", "trial_package"
MAX_MINUTES = 24 * 60


def _setting(key: str) -> str:
    row = Setting.get_or_none(Setting.key == key)
    return row.value if row is not None and not row.encrypted else ""


def trial_offer() -> tuple[int, Package] | None:
    """(minutes, package) when the site offers a free trial, else None."""
    minutes, package_id = _setting(MINUTES_KEY), _setting(PACKAGE_KEY)
    if not (minutes.isdigit() and package_id.isdigit()) or not 0 < int(minutes) <= MAX_MINUTES:
        return None
    package = Package.get_or_none(Package.id == int(package_id))
    if package is None or not package.active:
        return None
    return int(minutes), package


def _refused(this_try) -> ValidationError:
    this_try.wrong = True  # counts against the limits, like a wrong code
    return ValidationError("trial already taken today", field="phone",
                           en="The free trial is once a day for each phone and each device. "
                              "Please buy a package to keep browsing.",
                           sw="Majaribio ya bure ni mara moja kwa siku kwa kila simu na kila "
                              "kifaa. Tafadhali nunua kifurushi uendelee kutumia intaneti.")


def start_trial(phone_raw, *, mac, ip, gateway, now: datetime, source: str = "") -> Grant:
    """Give this device its free trial and log it in; ValidationError when refused."""
    offer = trial_offer()
    if offer is None:
        raise ValidationError("no trial offered", field="phone",
                              en="There is no free trial here.",
                              sw="Hakuna majaribio ya bure hapa.")
    minutes, package = offer
    phone = normalise_phone(phone_raw or "")
    device = identify(gateway, mac, ip, source)
    if not device.verified:
        raise ValidationError("trial from an unconfirmed device", field="phone",
                              en="Open this page from the WiFi to get the free trial.",
                              sw="Fungua ukurasa huu ukiwa kwenye WiFi upate majaribio ya bure.")
    day = to_nairobi(now).date().isoformat()
    with counted_try(device, now) as this_try:
        taken = TrialClaim.select().where((TrialClaim.day == day) & (
            (TrialClaim.phone == phone) | (TrialClaim.mac == device.mac))).exists()
        if taken:
            raise _refused(this_try)
        try:
            with db.atomic():
                grant = grants.create_grant(
                    package, Grant.TRIAL, now, expires_at=now + timedelta(minutes=minutes),
                    login_mac=device.mac, login_ip=device.ip, created_by="trial", sale=False)
                TrialClaim.create(day=day, phone=phone, mac=device.mac, grant=grant, at=now)
        except IntegrityError as exc:
            raise _refused(this_try) from exc  # the same phone or device, at the same moment
    return grants.provision_grant(grant.id, gateway, now)
