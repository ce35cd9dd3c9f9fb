"""Settlement: the one place a payment becomes a grant.

First against the real emulators over sockets (the grant is written with the payment; a
query after the callback changes nothing), then the state machine on its own, with no
server at all: rows in a SQLite file and M-Pesa answers applied to them.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from helpers import LOST, PAYER, buy, later, wait_for

from portal.ledger import grants, purchases, settlement
from portal.models import CallbackRecord, Grant, OutboxEvent, Package, Purchase, db

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def grant_of(purchase: Purchase) -> Grant | None:
    return Grant.get_or_none(Grant.purchase == purchase.id)


def grants_of(purchase: Purchase) -> list[Grant]:
    return list(Grant.select().where(Grant.purchase == purchase.id))


def paid_events() -> int:
    return OutboxEvent.select().where(OutboxEvent.kind == "sale").count()


def test_grant_is_written_with_the_payment_in_one_transaction(site):
    purchase = buy(site, LOST)
    with db.atomic() as txn:
        outcome = settlement.settle(purchase.checkout_request_id, success=True, result_code=0,
                               result_desc="ok", via="query", now=later(3))
        assert outcome == "settled" and grant_of(purchase) is not None
        txn.rollback()  # a crash before commit: neither the payment nor the grant remain
    assert fresh(purchase).status == Purchase.PENDING and grant_of(purchase) is None
    assert grants.due_for_provisioning(later(3)) == []


def test_query_after_callback_changes_nothing(site):
    purchase = buy(site, PAYER)
    assert wait_for(lambda: fresh(purchase).status == Purchase.PAID)
    receipt = fresh(purchase).receipt
    outcome = settlement.settle(purchase.checkout_request_id, success=True, result_code=0,
                           result_desc="processed", via="query", now=later(5))
    assert outcome == "duplicate"
    assert fresh(purchase).receipt == receipt
    assert len(grants_of(purchase)) == 1 and paid_events() == 1


# == the state machine, no server ==========================================================

NOW = datetime(2026, 12, 1, 9, 0, 0)
PHONE = "254708374149"


@pytest.fixture
def ledger(database):
    """A fresh database (no server at all) with one KES 20 package."""
    return Package.create(name_en="1 hour", price=20, validity_seconds=3600,
                          profile_name="kb-1-hour")


_SEQUENCE = iter(range(1, 10**6))


def purchase(package: Package, status: str = Purchase.PENDING, *, checkout: str | None = "auto",
             phone: str = PHONE, created: datetime = NOW) -> Purchase:
    """A purchase row as start_purchase leaves it in ``status``."""
    if checkout == "auto":
        checkout = f"ws_CO_{next(_SEQUENCE):06d}" if status != Purchase.PUSHING else None
    return Purchase.create(phone=phone, package=package, amount=package.price, status=status,
                           checkout_request_id=checkout, created_at=created, updated_at=created)


def callback(row: Purchase, *, code: int = 0, amount: float | None = None,
             receipt: str = "NLJ7RT61SV", phone: str | None = None,
             checkout: str | None = None) -> bytes:
    """The documented STK callback for ``row`` (success unless ``code`` says otherwise)."""
    body = {"MerchantRequestID": "29115-34620561-1",
            "CheckoutRequestID": checkout or row.checkout_request_id,
            "ResultCode": code, "ResultDesc": "The service request is processed successfully."
            if code == 0 else "Request cancelled by user"}
    if code == 0:
        body["CallbackMetadata"] = {"Item": [
            {"Name": "Amount", "Value": float(row.amount if amount is None else amount)},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "TransactionDate", "Value": 20261201120000},
            {"Name": "PhoneNumber", "Value": int(phone or row.phone)}]}
    return json.dumps({"Body": {"stkCallback": body}}).encode()


def query_answer(row: Purchase, *, success: bool, code: int | None = None) -> str:
    """What the agent's STK query does with Daraja's answer."""
    return settlement.settle(row.checkout_request_id, success=success,
                             result_code=code if code is not None else (0 if success else 1032),
                             result_desc="answered", via="query", now=NOW + timedelta(seconds=30))


def events(kind: str) -> int:
    return OutboxEvent.select().where(OutboxEvent.kind == kind).count()


def record(body: bytes, seconds: int = 20) -> str:
    outcome, _row = settlement.record_callback(body, "196.201.214.200",
                                               NOW + timedelta(seconds=seconds))
    return outcome


# -- a success ----------------------------------------------------------------------------

def test_success_pays_once_with_its_grant_and_event_in_the_same_transaction(ledger):
    row = purchase(ledger)
    assert record(callback(row)) == settlement.SETTLED
    paid = fresh(row)
    assert (paid.status, paid.receipt, paid.paid_amount) == (Purchase.PAID, "NLJ7RT61SV", 20)
    [grant] = grants_of(row)
    assert grant.expires_at == NOW + timedelta(seconds=20 + 3600)
    assert events("sale") == 1


def test_the_same_success_again_changes_nothing(ledger):
    row = purchase(ledger)
    assert record(callback(row)) == settlement.SETTLED
    assert record(callback(row), seconds=40) == settlement.DUPLICATE
    assert query_answer(row, success=True) == settlement.DUPLICATE
    assert len(grants_of(row)) == 1 and events("sale") == 1
    assert [r.outcome for r in CallbackRecord.select()] == ["settled", "duplicate"]


def test_a_query_success_first_then_the_callback_fills_in_the_receipt(ledger):
    row = purchase(ledger)
    assert query_answer(row, success=True) == settlement.SETTLED
    assert fresh(row).receipt is None
    assert record(callback(row, receipt="NLJ7RT61SW"), seconds=60) == settlement.DUPLICATE
    assert fresh(row).receipt == "NLJ7RT61SW" and len(grants_of(row)) == 1
    assert events("purchase.receipt") == 1


@pytest.mark.parametrize("before", [Purchase.FAILED, Purchase.EXPIRED])
def test_a_late_success_is_credited_after_a_failure_or_expiry(ledger, before):
    row = purchase(ledger, before)
    assert record(callback(row)) == settlement.LATE
    assert fresh(row).status == Purchase.PAID and len(grants_of(row)) == 1


# -- a failure ----------------------------------------------------------------------------

@pytest.mark.parametrize("before", [Purchase.PENDING, Purchase.EXPIRED])
def test_a_failure_closes_an_open_or_expired_purchase(ledger, before):
    row = purchase(ledger, before)
    assert record(callback(row, code=1032)) == settlement.FAILED
    assert (fresh(row).status, fresh(row).result_code) == (Purchase.FAILED, 1032)
    assert grants_of(row) == []


def test_a_failure_never_takes_back_a_payment(ledger):
    row = purchase(ledger)
    assert record(callback(row)) == settlement.SETTLED
    assert query_answer(row, success=False, code=1032) == settlement.DUPLICATE
    assert fresh(row).status == Purchase.PAID and len(grants_of(row)) == 1


# -- evidence that does not add up ----------------------------------------------------------

def _asked_at_once(row: Purchase, seconds: int = 20) -> bool:
    """The purchase is still open and its STK query is due now (the query decides)."""
    after = fresh(row)
    return (after.status == Purchase.PENDING
            and after.next_query_at == NOW + timedelta(seconds=seconds))


def test_an_underpayment_is_not_credited_and_the_query_decides(ledger):
    row = purchase(ledger)
    assert record(callback(row, amount=1)) == settlement.MISMATCH
    assert grants_of(row) == [] and _asked_at_once(row)
    assert "paid KES 1, price KES 20" in CallbackRecord.get().detail
    # The genuine callback that follows is credited: a mismatch blocks nothing.
    assert record(callback(row, receipt="NLJ7RT61SX"), seconds=30) == settlement.SETTLED
    assert fresh(row).receipt == "NLJ7RT61SX" and len(grants_of(row)) == 1


def test_a_payment_from_another_phone_is_not_credited_and_the_query_decides(ledger):
    row = purchase(ledger)
    assert record(callback(row, phone="254711000000")) == settlement.MISMATCH
    assert grants_of(row) == [] and _asked_at_once(row)
    assert query_answer(row, success=True) == settlement.SETTLED
    assert len(grants_of(row)) == 1


def test_a_success_without_receipt_amount_or_phone_waits_for_the_query(ledger):
    """Finding 4: ResultCode 0 with no metadata credited a push M-Pesa had cancelled."""
    row = purchase(ledger)
    bare = json.dumps({"Body": {"stkCallback": {
        "MerchantRequestID": "1", "CheckoutRequestID": row.checkout_request_id,
        "ResultCode": "0", "ResultDesc": "ok"}}}).encode()
    assert record(bare) == settlement.UNCONFIRMED
    assert grants_of(row) == [] and _asked_at_once(row)
    assert query_answer(row, success=False, code=1032) == settlement.FAILED
    assert fresh(row).status == Purchase.FAILED and Grant.select().count() == 0


def test_a_receipt_already_credited_to_another_purchase_is_not_credited_twice(ledger):
    first, second = purchase(ledger), purchase(ledger)
    assert record(callback(first)) == settlement.SETTLED
    assert record(callback(second), seconds=40) == settlement.MISMATCH
    assert grants_of(second) == [] and _asked_at_once(second, 40)
    assert Grant.select().count() == 1


def test_a_callback_for_no_purchase_is_recorded_and_grants_nothing(ledger):
    row = purchase(ledger)
    assert record(callback(row, checkout="ws_CO_nobody")) == settlement.UNKNOWN
    assert fresh(row).status == Purchase.PENDING and Grant.select().count() == 0
    assert CallbackRecord.get().outcome == "unknown"


def test_a_malformed_body_is_kept_for_review(ledger):
    assert record(b'{"Body": {"stkCallback": ') == settlement.MALFORMED
    assert CallbackRecord.get().outcome == "malformed"


def test_a_callback_without_a_reference_for_a_push_that_got_no_answer_goes_to_review(ledger):
    """A CallBackURL from before references: nothing proves it is ours; a person decides."""
    orphan = purchase(ledger, Purchase.UNANSWERED, checkout=None)
    stray = Purchase(checkout_request_id="ws_CO_lost_answer", amount=20, phone=PHONE)
    assert record(callback(stray)) == settlement.UNKNOWN
    assert fresh(orphan).status == Purchase.REVIEW and Grant.select().count() == 0
    assert "may belong to purchase" in CallbackRecord.get().detail


@pytest.mark.parametrize("before", [Purchase.PUSHING, Purchase.UNANSWERED])
def test_a_callback_finds_a_push_whose_answer_never_came_by_its_reference(ledger, before):
    """Findings 2 and 3: the sender died before storing the answer, or the answer was lost;
    the reference in the CallBackURL still leads the callback to its purchase."""
    row = purchase(ledger, before, checkout=None)
    outcome, found = settlement.record_callback(
        callback(row, checkout="ws_CO_learned"), "196.201.214.200", NOW + timedelta(seconds=20),
        reference=row.reference)
    assert outcome == settlement.SETTLED and found.id == row.id
    paid = fresh(row)
    assert (paid.status, paid.checkout_request_id) == (Purchase.PAID, "ws_CO_learned")
    assert len(grants_of(row)) == 1


# -- a callback that beats the push answer ---------------------------------------------------

def test_a_callback_that_beats_the_push_answer_is_credited_at_once(ledger):
    """The customer typed the PIN before Daraja's answer to our push was stored: the
    callback finds its purchase by reference, never waits, and the late answer changes
    nothing."""
    row = purchase(ledger, Purchase.PUSHING, checkout=None)
    outcome, _found = settlement.record_callback(
        callback(row, checkout="ws_CO_quick"), "196.201.214.200", NOW + timedelta(seconds=3),
        reference=row.reference)
    assert outcome == settlement.SETTLED
    purchases.record_push_answer(row.id, "ws_CO_quick", "29115-1", NOW + timedelta(seconds=4))
    paid = fresh(row)
    assert (paid.status, paid.checkout_request_id) == (Purchase.PAID, "ws_CO_quick")
    assert len(grants_of(row)) == 1


def test_a_reference_with_another_checkout_id_grants_nothing(ledger):
    row = purchase(ledger)
    outcome, _found = settlement.record_callback(
        callback(row, checkout="ws_CO_forged"), "196.201.214.200", NOW + timedelta(seconds=3),
        reference=row.reference)
    assert outcome == settlement.UNKNOWN and grants_of(row) == []
    assert fresh(row).status == Purchase.PENDING
    assert f"reference of purchase {row.id}" in CallbackRecord.get().detail
