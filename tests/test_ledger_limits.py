"""The abuse limits against the RouterOS emulator: who is asking (the router vouches for a
device's fields, or not), and how many wrong codes and pushes each key gets: a verified
device, the unverified devices behind one address, a source address, the whole site."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from helpers import IP, MAC, SOURCE, package

from portal.errors import RateLimited, ValidationError
from portal.ledger import codes, limits
from portal.ledger.limits import CODE_LIMITS, PHONE_PUSH_LIMIT, PUSH_LIMITS, Device, identify
from portal.models import CodeAttempt, Purchase, Voucher, VoucherBatch
from portal.timeutil import utcnow

pytestmark = pytest.mark.site(packages=True)

T = utcnow()
NAT = "10.5.50.1"  # the hotspot's own address: a whole venue behind one source


def phone_joins(site, n: int) -> tuple[str, str]:
    """Phone ``n`` joins the hotspot; returns its (mac, ip)."""
    mac, ip = f"AA:BB:CC:00:01:{n:02X}", f"10.5.50.{100 + n}"
    site.device_joins(ip, mac)
    return mac, ip


def make_voucher(code: str) -> Voucher:
    batch = VoucherBatch.create(package=package(), count=1, created_by="owner")
    return Voucher.create(code=code, batch=batch, package=package())


def guess(site, code: str, mac: str = "", ip: str = "", source: str = SOURCE, at=None):
    """One voucher try: 'online', 'wrong' or the RateLimited refusal."""
    try:
        codes.redeem_voucher(code, mac=mac, ip=ip, gateway=site.gateway, now=at or T,
                             source=source)
    except RateLimited as exc:
        return exc
    except ValidationError:
        return "wrong"
    return "online"


def wrong(site, n: int, **who) -> list:
    return [guess(site, f"9{i:07d}", **who) for i in range(n)]


# --- who is asking -------------------------------------------------------------------------

def test_a_device_is_verified_only_when_the_router_lists_that_mac_at_that_address(site):
    site.device_joins("10.5.50.40", "aa:bb:cc:00:00:40")
    site.device_joins("10.5.50.41", "AA:BB:CC:00:00:41")
    gateway = site.gateway
    device = identify(gateway, "aa:bb:cc:00:00:40", " 10.5.50.40 ", NAT)
    assert device == Device("AA:BB:CC:00:00:40", "10.5.50.40", NAT, True)
    assert device.key == "AA:BB:CC:00:00:40"
    for mac, ip in [("AA:BB:CC:00:00:41", "10.5.50.40"),   # another phone's MAC here
                    ("AA:BB:CC:00:00:40", "10.5.50.41"),   # this MAC at another address
                    ("AA:BB:CC:00:00:42", "10.5.50.42"),   # a phone the router never saw
                    ("", "10.5.50.40"), ("AA:BB:CC:00:00:40", ""), ("", ""),
                    ("AA:BB:CC:00:00:40" * 50, "10.5.50.40")]:
        claim = identify(gateway, mac, ip, NAT)
        assert not claim.verified and claim.key == "", (mac, ip)
    assert not identify(None, "AA:BB:CC:00:00:40", "10.5.50.40", NAT).verified


def test_a_burst_costs_one_router_lookup_per_address(site, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(limits, "monotonic", lambda: clock[0])
    site.gateway.version()  # the connection is open: the log below is lookups only
    log = site.router.command_log
    before = len(log)
    for n in range(30):
        identify(site.gateway, f"02:00:00:00:00:{n:02X}", "10.5.50.77", NAT)
    assert identify(site.gateway, MAC, IP, NAT).verified
    assert log[before:] == ["/ip/hotspot/host/print"] * 2
    # A phone that joins is seen once the short memory of the old answer is over.
    site.device_joins("10.5.50.77", "02:00:00:00:00:05")
    assert not identify(site.gateway, "02:00:00:00:00:05", "10.5.50.77", NAT).verified
    clock[0] += limits.HOST_CACHE_SECONDS + 0.1
    assert identify(site.gateway, "02:00:00:00:00:05", "10.5.50.77", NAT).verified
    assert log[before:] == ["/ip/hotspot/host/print"] * 3


def test_a_router_that_cannot_be_asked_makes_unverified_devices_without_waiting_each(site):
    site.router.stop()
    started = time.monotonic()
    first = identify(site.gateway, MAC, IP, NAT)
    assert not first.verified and first.mac == MAC
    for n in range(20):  # other addresses too: the router is not asked again at once
        assert not identify(site.gateway, MAC, f"10.5.50.{n}", NAT).verified
    assert time.monotonic() - started < 2.0


# --- wrong codes ---------------------------------------------------------------------------

def test_a_verified_device_gets_ten_wrong_codes_in_ten_minutes(site):
    make_voucher("27182818")
    assert wrong(site, 10, mac=MAC, ip=IP) == ["wrong"] * 10
    refused = guess(site, "27182818", mac=MAC, ip=IP)
    assert isinstance(refused, RateLimited) and refused.status == 429
    assert refused.message_for("en") == ("Too many attempts from this device. Please wait "
                                         "10 minutes and try again.")
    assert "subiri dakika 10" in refused.message_for("sw")
    assert [(a.device, a.source) for a in CodeAttempt.select()] == [(MAC, SOURCE)] * 10
    # Another phone behind the same address is not held back by this one's mistakes.
    other_mac, other_ip = phone_joins(site, 1)
    assert guess(site, "27182818", mac=other_mac, ip=other_ip) == "online"
    # The window slides: ten minutes after the first mistake the device may try again.
    assert guess(site, "90000001", mac=MAC, ip=IP, at=T + timedelta(minutes=10, seconds=1)) \
        == "wrong"


def test_unverified_devices_share_three_wrong_codes_per_address(site):
    claims = [("02:00:00:00:00:01", "10.5.51.1"), ("", ""), (MAC, "10.5.51.3")]
    assert [guess(site, f"8000000{n}", mac=m, ip=i) for n, (m, i) in enumerate(claims)] \
        == ["wrong"] * 3
    refused = guess(site, "80000009", mac="02:00:00:00:00:09", ip="10.5.51.9")
    assert isinstance(refused, RateLimited)
    assert "open this page again from the WiFi login page" in refused.message_for("en")
    assert "ukurasa wa kuingia wa WiFi" in refused.message_for("sw")
    assert [(a.device, a.source) for a in CodeAttempt.select()] == [("", SOURCE)] * 3
    # The router's own word still counts: the real phone behind this address may guess.
    assert guess(site, "80000010", mac=MAC, ip=IP) == "wrong"
    # And unverified devices behind another address have their own three.
    assert guess(site, "80000011", source="192.0.2.7") == "wrong"


def test_unverified_devices_get_ten_wrong_codes_on_the_whole_site(site):
    sources = [f"192.0.2.{n}" for n in range(1, 5)]
    results = [guess(site, f"7000{n:04d}", source=sources[n // 3]) for n in range(10)]
    assert results == ["wrong"] * 10
    refused = guess(site, "70009999", source="198.51.100.1")
    assert isinstance(refused, RateLimited)
    assert "Too many wrong codes on this WiFi right now" in refused.message_for("en")
    assert guess(site, "70009998", mac=MAC, ip=IP) == "wrong"


def test_a_site_under_attack_slows_every_guess_but_a_right_code_still_works(site):
    make_voucher("16180339")
    # Thirty wrong codes from three real phones behind three addresses.
    for n in range(3):
        mac, ip = phone_joins(site, n)
        assert wrong(site, 10, mac=mac, ip=ip, source=f"192.0.2.{n}") == ["wrong"] * 10
    assert CodeAttempt.select().count() == CODE_LIMITS.site_busy
    # A verified phone gets its guess, and a right code works.
    assert guess(site, "90001111", mac=MAC, ip=IP) == "wrong"
    slowed = guess(site, "16180339", mac=MAC, ip=IP, at=T + timedelta(seconds=30))
    assert isinstance(slowed, RateLimited)
    assert slowed.message_for("en") == (
        "Too many wrong codes on this WiFi right now, so each device must wait between "
        "tries. Please wait 5 minutes and try again.")
    assert "kila kifaa kinasubiri" in slowed.message_for("sw")
    mac, ip = phone_joins(site, 9)
    assert guess(site, "16180339", mac=mac, ip=ip, at=T + timedelta(seconds=30)) == "online"
    # An unverified device gets nothing while the site is under attack, not even a right code.
    make_voucher("14142135")
    refused = guess(site, "14142135", mac="02:00:00:00:00:01", ip="10.5.51.1")
    assert isinstance(refused, RateLimited)
    assert "Too many wrong codes on this WiFi right now. Please open" in \
        refused.message_for("en")
    # Five minutes after its mistake the first phone gets one more guess, then waits again.
    assert guess(site, "14142135", mac=MAC, ip=IP, at=T + timedelta(minutes=5, seconds=1)) \
        == "online"
    # Once the attack's guesses are out of the window, everyone is back to normal.
    assert guess(site, "90002222", mac="02:00:00:00:00:01", ip="10.5.51.1",
                 at=T + timedelta(minutes=10, seconds=1)) == "wrong"


def test_a_busy_source_address_slows_the_devices_behind_it_only(site):
    for n in range(2):
        mac, ip = phone_joins(site, n)
        assert wrong(site, 10, mac=mac, ip=ip, source=NAT) == ["wrong"] * 10
    assert CodeAttempt.select().where(CodeAttempt.source == NAT).count() \
        == CODE_LIMITS.source_busy
    mac, ip = phone_joins(site, 2)
    assert guess(site, "60000001", mac=mac, ip=ip, source=NAT) == "wrong"
    assert isinstance(guess(site, "60000002", mac=mac, ip=ip, source=NAT), RateLimited)
    assert isinstance(guess(site, "60000003", source=NAT), RateLimited)
    # Behind another address nothing changed.
    assert wrong(site, 3, mac=MAC, ip=IP, source="192.0.2.1") == ["wrong"] * 3


def test_a_stolen_device_guesses_at_that_device_rate_and_no_faster(site):
    """Known limit: fields copied from a real phone pass as that phone (same budget)."""
    victim_mac, victim_ip = phone_joins(site, 3)
    assert wrong(site, 10, mac=victim_mac, ip=victim_ip, source="192.0.2.66") \
        == ["wrong"] * 10
    assert isinstance(guess(site, "50000000", mac=victim_mac, ip=victim_ip,
                            source="192.0.2.67"), RateLimited)


# --- pushes --------------------------------------------------------------------------------

def pushed(device: Device, at, phone: str = "254712000000", amount: int = 10) -> Purchase:
    """A push as start_purchase records it."""
    return Purchase.create(phone=phone, package=package(), amount=amount, mac=device.mac,
                           ip=device.ip, source=device.source, verified=device.verified,
                           status=Purchase.PENDING, created_at=at, updated_at=at)


def may_push(device: Device, phone: str = "254712999999", amount: int = 10, at=None):
    try:
        limits.check_push_limits(phone, amount, device, at or T)
    except RateLimited as exc:
        return exc
    return True


def test_one_phone_gets_three_pushes_in_ten_minutes_whatever_the_amount(site):
    device = identify(site.gateway, MAC, IP, SOURCE)
    for n, amount in enumerate((10, 50, 250)):
        pushed(device, T - timedelta(minutes=9 - n), phone="254712345678", amount=amount)
    refused = may_push(device, "254712345678", 20)
    assert isinstance(refused, RateLimited)
    assert refused.message_for("en") == ("We already sent 3 payment requests to this phone. "
                                         "Check your phone, or wait 1 minute and try again.")
    assert refused.message_for("sw").startswith("Tayari tumetuma maombi 3 ya malipo")
    assert may_push(device, "254712345678", 20, at=T + timedelta(minutes=1, seconds=1))


def test_push_limits_per_device_per_address_and_on_the_site(site):
    verified = identify(site.gateway, MAC, IP, SOURCE)
    assert verified.verified
    for n in range(PUSH_LIMITS.device):
        pushed(verified, T - timedelta(seconds=n), phone=f"2547120000{n:02d}")
    assert "from this device" in may_push(verified).message_for("en")
    # Unverified claims behind one address share three.
    forged = Device("02:00:00:00:00:01", "10.5.51.1", NAT, False)
    for n in range(PUSH_LIMITS.unverified_source):
        pushed(forged, T, phone=f"2547130000{n:02d}")
    assert isinstance(may_push(Device(source=NAT)), RateLimited)
    # And the whole site's unverified devices share ten.
    for n in range(PUSH_LIMITS.unverified_site - PUSH_LIMITS.unverified_source):
        pushed(Device(source=f"192.0.2.{n}"), T, phone=f"2547140000{n:02d}")
    refused = may_push(Device(source="198.51.100.1"))
    assert "Too many payment requests on this WiFi right now" in refused.message_for("en")
    assert "Maombi mengi mno ya malipo" in refused.message_for("sw")
    other = identify(site.gateway, *phone_joins(site, 1), SOURCE)
    assert may_push(other) is True


def test_a_site_flooded_with_pushes_slows_every_device(site):
    for n in range(PUSH_LIMITS.site_busy):
        mac = f"AA:BB:CC:00:02:{n:02X}"
        pushed(Device(mac, f"10.5.52.{n}", f"192.0.2.{n}", True), T - timedelta(minutes=1),
               phone=f"2547150000{n:02d}")
    mine = identify(site.gateway, MAC, IP, SOURCE)
    assert may_push(mine) is True  # a phone's first push goes through
    pushed(mine, T, phone="254716000000")
    slowed = may_push(mine, at=T + timedelta(minutes=1))
    assert "each device must wait between tries" in slowed.message_for("en")
    assert may_push(mine, at=T + timedelta(minutes=5, seconds=1)) is True
    assert isinstance(may_push(Device("02:00:00:00:00:01", "10.5.51.1", SOURCE, False)),
                      RateLimited)


def test_a_repeat_push_is_held_back_only_while_the_first_is_unanswered(site):
    """After a cancel or a wrong PIN, the page's "Try again" must not be refused."""
    device = identify(site.gateway, MAC, IP, SOURCE)
    first = pushed(device, T - timedelta(seconds=30), phone="254712345678", amount=10)
    for status in (Purchase.PUSHING, Purchase.PENDING, Purchase.UNANSWERED):
        Purchase.update(status=status).where(Purchase.id == first.id).execute()
        held = may_push(device, "254712345678", 10)
        assert isinstance(held, RateLimited), status
        assert "already sent a payment request for this amount" in held.message_for("en")
    for status in (Purchase.FAILED, Purchase.PAID):
        Purchase.update(status=status).where(Purchase.id == first.id).execute()
        assert may_push(device, "254712345678", 10) is True, status


def test_paid_purchases_do_not_count_against_the_device_or_the_phone(site):
    """A customer buying for a second phone, or the demo's test numbers, are not refused."""
    device = identify(site.gateway, MAC, IP, SOURCE)
    for n in range(PUSH_LIMITS.device + 3):
        Purchase.update(status=Purchase.PAID).where(
            Purchase.id == pushed(device, T - timedelta(seconds=n), phone="254712345678",
                                  amount=10 + n).id).execute()
    assert may_push(device, "254712345678", 5) is True
    # Attempts that were not paid still count: cancelled, wrong PIN, still waiting.
    for n in range(PUSH_LIMITS.device):
        Purchase.update(status=Purchase.FAILED).where(
            Purchase.id == pushed(device, T - timedelta(seconds=n),
                                  phone=f"2547120001{n:02d}").id).execute()
    refused = may_push(device, "254712999999", 5)
    assert "Too many attempts from this device" in refused.message_for("en")
    for n in range(PHONE_PUSH_LIMIT):
        pushed(Device(source=f"192.0.2.{n}"), T, phone="254733000000", amount=10 + n)
    assert "payment requests to this phone" in may_push(
        identify(site.gateway, *phone_joins(site, 2), SOURCE), "254733000000",
        99).message_for("en")
