"""The M-Pesa callback endpoint: Daraja's real callbacks (emulator over HTTP) and the
documented payloads, against a portal served on a socket and the RouterOS emulator."""
from __future__ import annotations

import json

import pytest
from helpers import CANCELS, IP, LOST, PAYER, TWICE, buy, later, wait_for

from portal.ledger import purchases, status
from portal.models import CallbackRecord, Grant, OutboxEvent, Purchase

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


def success_body(purchase: Purchase, *, amount: float | None = None, receipt="NLJ7RT61SV",
                 phone: str | None = None, checkout: str | None = None) -> dict:
    """The documented success callback, for ``purchase`` unless told otherwise."""
    return {"Body": {"stkCallback": {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": checkout or purchase.checkout_request_id,
        "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": float(purchase.amount if amount is None else amount)},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "TransactionDate", "Value": 20191219102115},
            {"Name": "PhoneNumber", "Value": int(phone or purchase.phone)}]}}}}


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def grants(purchase: Purchase) -> list[Grant]:
    return list(Grant.select().where(Grant.purchase == purchase.id))


def outcomes() -> list[str]:
    return [row.outcome for row in CallbackRecord.select().order_by(CallbackRecord.id)]


def paid_events() -> int:
    return OutboxEvent.select().where(OutboxEvent.kind == "sale").count()


def test_callback_pays_and_logs_the_device_in(site):
    purchase = buy(site, PAYER)
    assert wait_for(lambda: fresh(purchase).status == Purchase.PAID)
    paid = fresh(purchase)
    [grant] = grants(paid)
    assert paid.receipt == site.daraja.transaction(purchase.checkout_request_id)["receipt"]
    assert wait_for(lambda: site.online(grant.username, IP))
    assert outcomes() == ["settled"]
    assert paid_events() == 1


def test_duplicate_callbacks_give_one_grant_and_keep_the_receipt(site):
    purchase = buy(site, TWICE)
    txn = site.daraja.wait_for_callbacks(purchase.checkout_request_id, count=2)
    assert wait_for(lambda: len(site.daraja.transaction(purchase.checkout_request_id)
                                ["callback_statuses"]) == 2)
    assert site.daraja.transaction(purchase.checkout_request_id)["callback_statuses"] == [200, 200]
    assert sorted(outcomes()) == ["duplicate", "settled"]
    assert len(grants(purchase)) == 1
    assert fresh(purchase).receipt == txn["receipt"]
    assert paid_events() == 1
    assert site.user_names().count(grants(purchase)[0].username) == 1


def test_callback_after_query_only_fills_in_the_receipt(site):
    purchase = buy(site, LOST)
    polled = purchases.poll_purchase(purchase.id, site.mpesa, later(1), force=True)
    assert polled.status == Purchase.PAID and polled.receipt is None
    [grant] = grants(purchase)
    answer = site.callback(success_body(purchase, receipt="QAB1CD2EF3"))
    assert answer.status_code == 200
    assert answer.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert fresh(purchase).receipt == "QAB1CD2EF3"
    assert grants(purchase) == [grant]
    assert outcomes() == ["duplicate"]
    assert paid_events() == 1
    assert OutboxEvent.select().where(OutboxEvent.kind == "purchase.receipt").count() == 1


def test_late_success_after_failure_is_credited(site):
    purchase = buy(site, CANCELS)
    assert wait_for(lambda: fresh(purchase).status == Purchase.FAILED)
    assert fresh(purchase).result_code == 1032 and grants(purchase) == []
    answer = site.callback(success_body(purchase, receipt="LATE000001"))
    assert answer.status_code == 200
    assert fresh(purchase).status == Purchase.PAID
    [grant] = grants(purchase)
    assert outcomes()[-1] == "late"
    assert site.online(grant.username, IP)


def test_a_success_hours_later_is_credited_nothing_expired_meanwhile(site):
    site.daraja.decision_delay = 3600  # the customer never answers the prompt
    purchase = buy(site, LOST)
    # No final word from M-Pesa: five minutes, or five hours, change nothing.
    assert purchases.sweep_unconfirmed(later(310)) == 0
    assert purchases.sweep_unconfirmed(later(5 * 3600)) == 0
    assert fresh(purchase).status == Purchase.PENDING
    assert status.purchase_state(fresh(purchase), later(310))["reason"] == "confirming"
    site.callback(success_body(purchase, receipt="LATE000002"))
    assert fresh(purchase).status == Purchase.PAID
    [grant] = grants(purchase)
    assert site.online(grant.username, IP)


def test_unknown_checkout_grants_nothing_and_is_recorded(site):
    purchase = buy(site, LOST)
    answer = site.callback(success_body(purchase, checkout="ws_CO_000000000000000000"))
    assert answer.status_code == 200
    assert outcomes() == ["unknown"]
    assert Grant.select().count() == 0
    assert fresh(purchase).status == Purchase.PENDING
    assert not site.online()


def test_a_callback_below_the_price_grants_nothing_and_the_query_decides(site):
    """Evidence, not proof: a forged lower amount is not credited, and it does not block
    M-Pesa's own word about the push we sent (for the full price)."""
    site.daraja.decision_delay = 2.0  # the customer types the PIN two seconds from now
    purchase = buy(site, LOST, name="1 day")  # KES 50; Daraja's own callback gets lost
    answer = site.callback(success_body(purchase, amount=49.99, receipt="SHORT00001"))
    assert answer.status_code == 200
    assert outcomes() == ["mismatch"]
    assert "KES 49" in CallbackRecord.get().detail
    assert grants(purchase) == [] and not site.online()
    assert fresh(purchase).status == Purchase.PENDING
    assert fresh(purchase).next_query_at <= later(1)  # confirmed by query at once
    # Daraja still says pending: nothing credited.
    purchases.poll_purchase(purchase.id, site.mpesa, later(2), force=True)
    assert grants(purchase) == [] and fresh(purchase).status == Purchase.PENDING
    # The customer pays: the query credits it, whatever the forged callback said.
    assert wait_for(lambda: site.daraja.transaction(purchase.checkout_request_id)["decided"])
    assert purchases.poll_purchase(purchase.id, site.mpesa, later(4),
                                   force=True).status == Purchase.PAID
    assert len(grants(purchase)) == 1


def test_a_forged_callback_from_another_phone_does_not_block_the_genuine_one(site):
    site.daraja.decision_delay = 1.0
    purchase = buy(site, PAYER)
    site.callback(success_body(purchase, phone="254711111111", receipt="OTHER00001"))
    assert outcomes()[0] == "mismatch" and grants(purchase) == []
    # Daraja's own callback follows when the customer has typed the PIN.
    assert wait_for(lambda: fresh(purchase).status == Purchase.PAID, timeout=8)
    [grant] = grants(purchase)
    assert fresh(purchase).receipt != "OTHER00001"
    assert wait_for(lambda: site.online(grant.username, IP))


def test_malformed_json_is_refused_with_400_and_recorded(site):
    purchase = buy(site, LOST)
    answer = site.callback(b'{"Body": {"stkCallback": ')
    assert answer.status_code == 400
    assert outcomes() == ["malformed"]
    assert CallbackRecord.get().body.startswith('{"Body"')
    no_id = site.callback({"Body": {"stkCallback": {"ResultCode": 0}}})
    assert no_id.status_code == 400
    assert fresh(purchase).status == Purchase.PENDING and Grant.select().count() == 0


def test_wrong_secret_is_404_and_records_nothing(site):
    purchase = buy(site, LOST)
    answer = site.callback(success_body(purchase), secret="guessed-secret")
    assert answer.status_code == 404
    assert CallbackRecord.select().count() == 0
    assert fresh(purchase).status == Purchase.PENDING and grants(purchase) == []


def test_source_address_check_when_configured(site):
    purchase = buy(site, LOST)
    site.app.config["CALLBACK_ALLOWED_IPS"] = "196.201.214.200, 196.201.213.0/24"
    refused = site.callback(success_body(purchase))
    assert refused.status_code == 403
    assert outcomes() == ["refused"] and grants(purchase) == []
    site.app.config["CALLBACK_ALLOWED_IPS"] = "196.201.214.200,127.0.0.0/8"
    assert site.callback(success_body(purchase)).status_code == 200
    assert fresh(purchase).status == Purchase.PAID and len(grants(purchase)) == 1


def test_safaricom_stands_for_the_documented_callback_addresses():
    from portal.web.callback import source_allowed

    assert source_allowed("196.201.214.200", "safaricom")
    assert source_allowed("196.201.212.74", " Safaricom ,10.0.0.0/8")
    assert source_allowed("10.1.2.3", "safaricom, 10.0.0.0/8")
    assert not source_allowed("127.0.0.1", "safaricom")
    assert not source_allowed("not an address", "safaricom")


def test_failure_callback_is_recorded_once_with_the_reason(site):
    purchase = buy(site, CANCELS)
    assert wait_for(lambda: fresh(purchase).status == Purchase.FAILED)
    body = {"Body": {"stkCallback": {"MerchantRequestID": "x", "ResultCode": 2001,
                                     "CheckoutRequestID": purchase.checkout_request_id,
                                     "ResultDesc": "The initiator information is invalid."}}}
    assert site.callback(json.dumps(body).encode()).status_code == 200
    failed = fresh(purchase)
    assert failed.result_code == 1032  # the first answer stands
    state = status.purchase_state(failed, later(1))
    assert state["status"] == "failed" and state["reason"] == "cancelled"
    assert "cancelled" in state["message"]["en"] and state["message"]["sw"]
