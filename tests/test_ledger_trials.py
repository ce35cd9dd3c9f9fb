"""The free trial in the ledger: off unless the owner turns it on, only for a device the
router confirms, once per phone and per device per Nairobi day, and every refusal counted
like a wrong code (RouterOS emulator, real gateway)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, MAC, nairobi, package

from portal.errors import RateLimited, ValidationError
from portal.ledger import trials
from portal.models import Grant, TrialClaim
from portal.venue.trial import save_trial

pytestmark = pytest.mark.site(packages=True)


def take(site, phone, now, mac=MAC, ip=IP):
    return trials.start_trial(phone, mac=mac, ip=ip, gateway=site.gateway, now=now,
                              source="127.0.0.1")


def test_trial_is_off_until_the_owner_turns_it_on(site):
    with pytest.raises(ValidationError) as off:
        take(site, "0712345678", nairobi(11, 9))
    assert off.value.message_for("en") == "There is no free trial here."
    with pytest.raises(ValidationError) as bad:
        save_trial("owner", "", minutes="15", package_id="999")
    assert "Chagua kifurushi" in bad.value.message_for("sw")


def test_once_per_phone_and_device_per_nairobi_day_and_refusals_are_counted(site):
    save_trial("owner", "", minutes="20", package_id=package("1 hour").id)
    now = nairobi(11, 20)
    grant = take(site, "0712345678", now)
    assert grant.source == Grant.TRIAL and grant.expires_at == now + timedelta(minutes=20)
    assert site.online(grant.username, IP)
    for phone in ("0712345678", "0799000111"):
        with pytest.raises(ValidationError) as again:
            take(site, phone, now + timedelta(minutes=1))
        assert "once a day for each phone and each device" in again.value.message_for("en")
    # A device the router has never seen gets nothing.
    with pytest.raises(ValidationError) as unseen:
        take(site, "0733000111", now, mac="AA:BB:CC:DD:EE:09", ip="10.5.50.99")
    assert "Open this page from the WiFi" in unseen.value.message_for("en")
    # Trying phone after phone from one device is stopped like code guessing.
    with pytest.raises(RateLimited):
        for n in range(20):
            with pytest.raises(ValidationError):
                take(site, f"07110000{n:02d}", now + timedelta(minutes=2))
    # The next Nairobi day (after midnight in Nairobi, 21:00 UTC) it is offered again.
    tomorrow = nairobi(12, 0, 30)
    assert take(site, "0712345678", tomorrow).source == Grant.TRIAL
    assert TrialClaim.select().count() == 2
