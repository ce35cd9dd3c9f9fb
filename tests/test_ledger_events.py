"""Outbox events in the sync contract's words: one "sale" per sale whatever path it took,
"voucher.batch", "voucher.used", "grant.expired"; each written in the transaction of its
change (rolled back with it), stamped with the time of the change."""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, LOST, MAC, PAYER, buy, later
from peewee import IntegrityError

from portal.errors import ValidationError
from portal.ledger import codes, events, grants, settlement
from portal.models import Grant, OutboxEvent, Purchase, Voucher, VoucherBatch, db
from portal.timeutil import utcnow
from portal.venue import vouchers

# Callbacks go to a port nobody listens on: the tests hand them to settle() themselves.
pytestmark = pytest.mark.site(daraja=True, packages=True)


def outbox(kind: str) -> list[OutboxEvent]:
    """The events of one kind, oldest first."""
    return list(OutboxEvent.select().where(OutboxEvent.kind == kind).order_by(OutboxEvent.seq))


def test_a_paid_push_is_one_sale_whatever_confirms_it_and_how_often(site, agent):
    now = utcnow()
    purchase = buy(site, LOST, now=now, answered=True)
    agent.loop(now + timedelta(seconds=6))  # the STK query finds it paid (no receipt)
    with db.connection_context():
        paid = Purchase.get_by_id(purchase.id)
        assert paid.status == Purchase.PAID
        # The callback arrives late, then another query: the same sale, not a second one.
        for via, receipt in (("callback", "TCB4XY7Z9Q"), ("query", None)):
            outcome = settlement.settle(paid.checkout_request_id, success=True, result_code=0,
                                        result_desc="ok", receipt=receipt, amount=10,
                                        phone=LOST, via=via, now=later(20))
            assert outcome == "duplicate"
        [sale] = outbox("sale")
        [late] = outbox("purchase.receipt")
        access_code = Grant.get(Grant.purchase == purchase.id).username
        everything = "".join(e.payload for e in OutboxEvent.select())
    assert late.data == {"checkout_request_id": paid.checkout_request_id, "receipt": "TCB4XY7Z9Q"}
    # Neither the access code nor the purchase's own reference (it opens the customer's
    # page, which shows the code) ever leaves the site.
    assert access_code not in everything and purchase.reference not in everything
    assert sale.data == {"amount": 10, "source": "mpesa", "package": "1 hour", "receipt": None,
                         "reference": paid.checkout_request_id, "phone": "07xx xxx 001",
                         "paid_at": events.iso(paid.settled_at)}
    assert sale.created_at == paid.settled_at


def test_a_callback_sale_carries_its_receipt_and_rolls_back_with_the_payment(site):
    purchase = buy(site, PAYER)
    with db.connection_context():
        with db.atomic() as txn:
            settlement.settle(purchase.checkout_request_id, success=True, result_code=0,
                              result_desc="ok", receipt="TCB1ABC234", amount=10, phone=PAYER,
                              via="callback", now=later(3))
            assert len(outbox("sale")) == 1
            txn.rollback()  # a crash before commit: no payment, no grant, no sale
        assert outbox("sale") == [] and Grant.select().count() == 0
        settlement.settle(purchase.checkout_request_id, success=True, result_code=0,
                          result_desc="ok", receipt="TCB1ABC234", amount=10, phone=PAYER,
                          via="callback", now=later(4))
        [sale] = outbox("sale")
    assert (sale.data["receipt"], sale.data["phone"], sale.data["amount"]) == (
        "TCB1ABC234", "07xx xxx 149", 10)


def test_a_voucher_is_one_sale_and_one_use_however_often_it_is_typed(site):
    [code] = site.make_vouchers("1 day", 1)
    now = utcnow()
    with db.connection_context():
        for minute in (0, 5):
            codes.redeem_voucher(code, mac=MAC, ip=IP, gateway=site.gateway,
                                 now=now + timedelta(minutes=minute), source="127.0.0.1")
        [used], [sale] = outbox("voucher.used"), outbox("sale")
    assert used.data == {"code_hash": events.code_hash(code), "package": "1 day",
                         "first_login_at": events.iso(now)}
    assert (sale.data["amount"], sale.data["source"], sale.data["phone"]) == (50, "voucher", None)
    assert used.created_at == sale.created_at == now
    assert site.online()


def test_a_voucher_use_that_cannot_become_a_grant_changes_nothing(site):
    [code] = site.make_vouchers("1 hour", 1)
    now = utcnow()
    with db.connection_context():
        # An access code drawn earlier happens to be this voucher's code.
        with db.atomic():
            grants.create_grant(site.package("1 hour"), Grant.MANUAL, now, username=code)
        voucher = Voucher.get(Voucher.code == code)
        with pytest.raises(IntegrityError):
            codes.start_voucher(voucher, now, on_router=True)
        assert Voucher.get_by_id(voucher.id).state == Voucher.ON_ROUTER
        assert outbox("voucher.used") == []
        assert [e.data["source"] for e in outbox("sale")] == ["manual"]


def test_a_manual_grant_is_a_sale_of_nothing(site):
    with db.connection_context():
        grant = grants.manual_grant(site.package("1 hour").id, "paid but not connected",
                                    site.gateway, utcnow(), actor="mama")
        [sale] = outbox("sale")
    assert grant.router_state == Grant.ON_ROUTER
    assert (sale.data["amount"], sale.data["source"], sale.data["receipt"]) == (0, "manual", None)


def test_a_voucher_batch_event_is_written_with_the_batch(site):
    now = utcnow()
    with db.connection_context():
        package = site.package("1 week")
        batch = vouchers.create_batch(package, 25, now, created_by="mama")
        with pytest.raises(ValidationError):
            vouchers.create_batch(package, 0, now, created_by="mama")
        [event] = outbox("voucher.batch")
        assert VoucherBatch.select().count() == 1
    assert event.data == {"batch_id": batch.id, "package": "1 week", "count": 25, "price": 250}
    assert event.created_at == now


def test_grant_expiry_is_an_event_at_the_agents_time(site, agent):
    with db.connection_context():
        grant = grants.manual_grant(site.package("1 hour").id, "compensation", site.gateway,
                                    utcnow(), actor="mama")
    at = grant.expires_at + timedelta(seconds=5)
    assert agent.loop(at).done["remove_expired"] == 1
    with db.connection_context():
        [event] = outbox("grant.expired")
        assert Grant.get_by_id(grant.id).router_state == Grant.REMOVED
    assert event.data["grant_uuid"] == f"grant-{grant.id}" and event.created_at == at


@pytest.mark.parametrize("phone, shown", [("254712345678", "07xx xxx 678"),
                                          ("0110 123 456", "01xx xxx 456"),
                                          ("not a phone", None), (None, None)])
def test_phones_reach_the_hub_masked(phone, shown):
    assert events.masked_phone(phone) == shown
