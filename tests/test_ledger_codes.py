"""Vouchers, access codes and receipts through the ledger, against the RouterOS emulator:
what a try leaves behind for the limits (the request's address and the device the router
confirmed, for a wrong code only)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, MAC, package

from portal.errors import AccessExpired, RateLimited, ValidationError
from portal.ledger import codes
from portal.models import CodeAttempt, Voucher, VoucherBatch
from portal.timeutil import utcnow

pytestmark = pytest.mark.site(packages=True)

T = utcnow()
NAT = "10.5.50.1"


def make_voucher(code: str, **fields) -> Voucher:
    batch = VoucherBatch.create(package=package(), count=1, created_by="owner")
    return Voucher.create(code=code, batch=batch, package=package(), **fields)


def attempts() -> list[tuple[str, str, bool]]:
    return [(a.device, a.source, a.ok) for a in CodeAttempt.select().order_by(CodeAttempt.id)]


def test_a_wrong_code_leaves_the_address_and_the_confirmed_device_only(site):
    with pytest.raises(ValidationError):
        codes.redeem_voucher("1111-2222", mac=MAC.lower(), ip=IP, gateway=site.gateway, now=T,
                             source=NAT)
    with pytest.raises(ValidationError):  # a claim the router does not confirm
        codes.reconnect("ABCDEFGHIJ", mac="02:00:00:00:00:01", ip=IP, gateway=site.gateway,
                        now=T, source=NAT)
    make_voucher("33334444", state=Voucher.VOID)
    with pytest.raises(ValidationError, match="void"):
        codes.reconnect("33334444", mac=MAC, ip=IP, gateway=site.gateway, now=T, source=NAT)
    assert attempts() == [(MAC, NAT, False), ("", NAT, False), (MAC, NAT, False)]


def test_right_codes_and_refused_tries_leave_nothing(site):
    make_voucher("48213377")
    grant = codes.redeem_voucher("48213377", mac=MAC, ip=IP, gateway=site.gateway, now=T,
                                 source=NAT)
    assert site.online("48213377", IP)
    for _ in range(3):  # the same code again, as a voucher and as an access code
        codes.redeem_voucher("48213377", mac=MAC, ip=IP, gateway=site.gateway, now=T,
                             source=NAT)
        codes.reconnect(grant.username, mac=MAC, ip=IP, gateway=site.gateway, now=T,
                        source=NAT)
    make_voucher("22223333", state=Voucher.USED, first_login_at=T - timedelta(hours=2),
                 expires_at=T - timedelta(hours=1))
    with pytest.raises(AccessExpired):
        codes.reconnect("22223333", mac=MAC, ip=IP, gateway=site.gateway, now=T, source=NAT)
    assert attempts() == []
    for n in range(3):  # an unverified device's three wrong codes ...
        with pytest.raises(ValidationError):
            codes.redeem_voucher(f"9000000{n}", mac="", ip="", gateway=site.gateway, now=T,
                                 source=NAT)
    for _ in range(5):  # ... then refusals, which count nothing more
        with pytest.raises(RateLimited):
            codes.redeem_voucher("48213377", mac="", ip="", gateway=site.gateway, now=T,
                                 source=NAT)
    assert attempts() == [("", NAT, False)] * 3
