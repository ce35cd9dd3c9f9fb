"""Storage that refuses writes (a full or read-only SD card): the customer is told kindly,
nothing is recorded, nobody is charged, and Daraja is not told a callback was taken."""
from __future__ import annotations

import pytest
from helpers import IP, LOGIN_URL, MAC, PAYER, package
from peewee import DatabaseError

from portal.models import AuditLog, Purchase, db

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


@pytest.fixture
def storage_refuses_writes(site):
    """Every write fails, as on an SD card the kernel remounted read-only after errors.

    (A capped page count does not do: small rows still fit in the free space of pages a
    table already has, exactly as they would on a real full disk.)
    """
    db.connect(reuse_if_open=True)
    db.pragma("query_only", 1, permanent=True)
    with pytest.raises(DatabaseError):
        AuditLog.create(actor="probe", action="write")
    yield
    db.pragma("query_only", 0, permanent=True)


def test_buying_sends_no_push_and_records_nothing(site, storage_refuses_writes):
    client = site.app.test_client()
    pushes_before = site.daraja.push_requests
    answer = client.post("/buy", headers={"Accept-Language": "sw"}, data={
        "package": package("1 hour").id, "phone": PAYER, "mac": MAC, "ip": IP,
        "link-login-only": LOGIN_URL, "link-orig": ""})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 503
    assert "Hakuna pesa iliyotozwa" in page  # "Nothing was charged", in Swahili
    assert "Traceback" not in page and "sqlite" not in page.lower()
    assert site.daraja.push_requests == pushes_before
    assert Purchase.select().count() == 0


def test_a_callback_is_not_acknowledged(site, storage_refuses_writes):
    """Daraja keeps a callback it could not deliver; the query settles it later."""
    body = {"Body": {"stkCallback": {"MerchantRequestID": "1", "CheckoutRequestID": "ws_CO_1",
                                     "ResultCode": 1032, "ResultDesc": "Request cancelled"}}}
    answer = site.app.test_client().post(
        f"/mpesa/callback/{site.app.config['CALLBACK_SECRET']}", json=body)
    assert answer.status_code == 503
