"""Payments from the M-Pesa menu (C2B), through the ledger: matched by account code, by
phone + amount + time, or sold by amount; the bad-input list of issue 10 (unknown
account, duplicate receipt, cents, other phone formats, two waiting purchases): nothing
granted twice, nothing lost, every case visible with its reason.

Waiting purchases are real pushes to the Daraja emulator, whose customers take ten
minutes to answer (so the page still waits when the menu payment lands).
"""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from helpers import IP, MAC, PAYER, buy

from portal.errors import ValidationError
from portal.ledger import c2b
from portal.models import C2BPayment, CallbackRecord, Grant, OutboxEvent, Package, Purchase
from portal.timeutil import nairobi_timestamp, utcnow

pytestmark = [pytest.mark.site(daraja=True, packages=True),
              pytest.mark.daraja(decision_delay=600)]
OTHER = "254711000222"


def confirmation(trans_id="RKL51ZDR4F", amount="10.00", account="", msisdn="2547 ***** 149",
                 kind="Pay Bill", at=None, **extra) -> dict:
    """A C2B confirmation as the reference sheet shows it (v2: MSISDN masked)."""
    return {"TransactionType": kind, "TransID": trans_id,
            "TransTime": nairobi_timestamp(at or utcnow()), "TransAmount": amount,
            "BusinessShortCode": "174379", "BillRefNumber": account, "InvoiceNumber": "",
            "OrgAccountBalance": "25.00", "ThirdPartyTransID": "", "MSISDN": msisdn,
            "FirstName": "NICHOLAS", "MiddleName": "", "LastName": "", **extra}


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def grants_of(purchase_id) -> list[Grant]:
    return list(Grant.select().where(Grant.purchase == purchase_id))


def payment(trans_id: str) -> C2BPayment:
    return C2BPayment.get(C2BPayment.trans_id == trans_id)


def test_account_codes_are_short_unique_and_free_of_look_alikes(site):
    codes = {buy(site, f"25471100000{i}", mac=f"AA:BB:CC:DD:EE:0{i}", ip=f"10.5.50.{i}")
             .account_code for i in range(1, 4)}
    assert len(codes) == 3
    for code in codes:
        assert len(code) == 5 and not set(code) & set("0O1IL2Z5S8B6G")


def test_paybill_account_credits_the_waiting_purchase_and_logs_its_device_in(site):
    purchase = buy(site, PAYER)
    typed = purchase.account_code.lower()[:2] + " " + purchase.account_code[2:]  # as typed
    result = c2b.record_confirmation(confirmation(account=typed), source_ip="196.201.214.200")
    assert result.outcome == "credited" and result.purchase_id == purchase.id
    paid = fresh(purchase)
    assert (paid.status, paid.receipt, paid.paid_amount) == ("paid", "RKL51ZDR4F", 10)
    grant = result.grant
    assert grant.login_mac == MAC and grant.login_ip == IP
    assert "by account code" in payment("RKL51ZDR4F").reason
    # The STK query that was still due finds the purchase paid and changes nothing.
    assert len(grants_of(purchase.id)) == 1


def test_a_duplicate_receipt_is_counted_never_credited_twice(site):
    purchase = buy(site, PAYER)
    body = confirmation(account=purchase.account_code)
    first = c2b.record_confirmation(body)
    again = c2b.record_confirmation(json.dumps(body).encode())
    assert (first.outcome, again.outcome) == ("credited", "duplicate")
    assert len(grants_of(purchase.id)) == 1
    assert payment("RKL51ZDR4F").copies == 2
    assert CallbackRecord.select().where(CallbackRecord.outcome == "duplicate").count() == 1
    # One sale for the hub, named as paid from the menu.
    sales = [e.data for e in OutboxEvent.select().where(OutboxEvent.kind == "sale")]
    assert [(s["source"], s["receipt"]) for s in sales] == [("c2b", "RKL51ZDR4F")]


def test_an_unknown_account_still_becomes_a_sale_of_the_package_at_that_price(site):
    result = c2b.record_confirmation(confirmation(account="WIFI", amount="50"))
    assert result.outcome == "credited"
    sale = Purchase.get_by_id(result.purchase_id)
    assert (sale.package.name_en, sale.status, sale.receipt) == ("1 day", "paid", "RKL51ZDR4F")
    assert sale.mac == "" and len(grants_of(sale.id)) == 1
    assert "'WIFI'" in payment("RKL51ZDR4F").reason and "by amount" in payment("RKL51ZDR4F").reason


@pytest.mark.parametrize("amount, why", [("20.50", "cents"), ("30", "no package"),
                                         ("abc", "not a number")])
def test_amounts_that_fit_no_package_go_to_review_with_a_reason(site, amount, why):
    result = c2b.record_confirmation(confirmation(amount=amount))
    assert result.outcome == "review" and result.purchase_id is None
    row = payment("RKL51ZDR4F")
    assert row.status == "review" and why in row.reason
    assert Grant.select().count() == 0


def test_two_packages_at_one_price_go_to_review(site):
    Package.create(name_en="Night", price=50, validity_seconds=43200, profile_name="night")
    result = c2b.record_confirmation(confirmation(amount="50.00"))
    assert result.outcome == "review" and "2 packages" in payment("RKL51ZDR4F").reason


@pytest.mark.parametrize("msisdn", ["254708374149", "0708374149", "+254 708 374 149",
                                    "2547 ***** 149",
                                    hashlib.sha256(b"254708374149").hexdigest()])
def test_a_till_payment_matches_by_phone_in_any_format_amount_and_time(site, msisdn):
    purchase = buy(site, PAYER)
    result = c2b.record_confirmation(confirmation(kind="Buy Goods", msisdn=msisdn))
    assert result.outcome == "credited" and result.purchase_id == purchase.id
    assert "phone, amount and time" in payment("RKL51ZDR4F").reason


def test_a_till_payment_matching_two_waiting_purchases_goes_to_review(site):
    # The masked number (v2) fits both phones: which one paid cannot be told.
    first = buy(site, PAYER)
    second = buy(site, "254700000149", mac="AA:BB:CC:DD:EE:02", ip="10.5.50.24")
    result = c2b.record_confirmation(confirmation(kind="Buy Goods", msisdn="2547 ***** 149"))
    assert result.outcome == "review"
    assert f"({first.id}, {second.id})" in payment("RKL51ZDR4F").reason
    assert fresh(first).status == fresh(second).status == "pending"
    assert Grant.select().count() == 0


def test_a_till_payment_from_another_phone_or_too_late_is_a_sale_by_amount(site):
    purchase = buy(site, PAYER)
    other = c2b.record_confirmation(confirmation(kind="Buy Goods", msisdn=OTHER))
    late = c2b.record_confirmation(confirmation(
        trans_id="RKL51ZDR4G", kind="Buy Goods", msisdn=PAYER,
        at=utcnow() + timedelta(hours=2)))
    assert other.purchase_id != purchase.id and late.purchase_id != purchase.id
    assert other.outcome == late.outcome == "credited"
    assert fresh(purchase).status == "pending"


def test_paying_less_than_the_price_does_not_pay_the_purchase(site):
    purchase = buy(site, PAYER, name="1 day")  # KES 50
    result = c2b.record_confirmation(confirmation(account=purchase.account_code, amount="10"))
    assert fresh(purchase).status == "pending"
    row = payment("RKL51ZDR4F")
    # KES 10 is the 1-hour price: a sale of its own, with the reason on the row.
    assert result.outcome == "credited" and "price KES 50" in row.reason


def test_an_expired_account_code_is_a_sale_by_amount(site):
    purchase = buy(site, PAYER)
    later = utcnow() + c2b.ACCOUNT_CODE_VALIDITY + timedelta(minutes=1)
    result = c2b.record_confirmation(confirmation(account=purchase.account_code, at=later),
                                     now=later)
    assert result.purchase_id != purchase.id and "has expired" in payment("RKL51ZDR4F").reason


def test_a_body_without_a_receipt_is_kept_and_grants_nothing(site):
    result = c2b.record_confirmation(b'{"TransAmount": "10"}', source_ip="10.0.0.9")
    assert result.outcome == "malformed"
    record = CallbackRecord.get(CallbackRecord.outcome == "malformed")
    assert "TransAmount" in record.body and record.remote_addr == "10.0.0.9"
    assert c2b.record_confirmation(b"not json").outcome == "malformed"
    assert C2BPayment.select().count() == 0 and Grant.select().count() == 0


def test_a_payment_recorded_but_not_matched_is_finished_later(site):
    purchase = buy(site, PAYER)
    now = utcnow()
    row = C2BPayment.create(trans_id="RKL51ZDR4F", amount=10, amount_text="10",
                            bill_ref=purchase.account_code, msisdn="2547 ***** 149",
                            paid_at=now, received_at=now)  # the process died here
    assert c2b.match_new(now) == 0  # not before it had its chance
    assert c2b.match_new(now + timedelta(minutes=1)) == 1
    assert payment("RKL51ZDR4F").status == "credited" and fresh(purchase).status == "paid"
    assert row.id == payment("RKL51ZDR4F").id


def test_the_owner_grants_the_nearest_package_or_marks_refunded(site):
    c2b.record_confirmation(confirmation(amount="30"))
    c2b.record_confirmation(confirmation(trans_id="RKL51ZDR4H", amount="20.50"))
    review = {p.trans_id: p for p in c2b.to_review()}
    assert set(review) == {"RKL51ZDR4F", "RKL51ZDR4H"}
    assert c2b.nearest_package(30).name_en == "1 hour"
    done = c2b.grant_nearest(review["RKL51ZDR4F"].id, None, actor="mama", now=utcnow())
    assert done.status == "credited" and done.resolved_by == "mama"
    assert len(grants_of(done.purchase_id)) == 1
    refunded = c2b.mark_refunded(review["RKL51ZDR4H"].id, actor="mama", now=utcnow())
    assert refunded.status == "refunded" and "refunded by mama" in refunded.reason
    with pytest.raises(ValidationError):
        c2b.mark_refunded(review["RKL51ZDR4F"].id, actor="mama", now=utcnow())
    assert list(c2b.to_review()) == []


def test_validation_refuses_cents_and_amounts_below_every_package(site):
    assert c2b.validate(confirmation(amount="10")) == (True, "")
    assert c2b.validate(confirmation(amount="5"))[0] is False
    assert c2b.validate(confirmation(amount="10.50"))[0] is False
    assert c2b.validate(confirmation(account="WIFI"), reject_unknown_accounts=True)[0] is False
    purchase = buy(site, PAYER)
    assert c2b.validate(confirmation(account=purchase.account_code),
                        reject_unknown_accounts=True)[0] is True


def test_a_relayed_confirmation_needs_the_secret_then_takes_the_same_path(site):
    purchase = buy(site, PAYER)
    body = json.dumps(confirmation(account=purchase.account_code))
    config = site.app.config
    assert c2b.relayed_confirmation("guess", body, source_ip="hub", config=config) is None
    result = c2b.relayed_confirmation(config["CALLBACK_SECRET"], body, source_ip="hub",
                                      config=config)
    assert result.outcome == "credited" and payment("RKL51ZDR4F").via == "relay"
    again = c2b.relayed_confirmation(config["CALLBACK_SECRET"] + "/", body, source_ip="hub",
                                     config=config)
    assert again.outcome == "duplicate" and len(grants_of(purchase.id)) == 1


def test_a_prompt_paid_after_the_menu_payment_is_a_payment_of_its_own(site):
    from portal.ledger import settlement

    purchase = buy(site, PAYER)
    c2b.record_confirmation(confirmation(account=purchase.account_code))
    body = {"Body": {"stkCallback": {
        "MerchantRequestID": purchase.merchant_request_id,
        "CheckoutRequestID": purchase.checkout_request_id, "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": 10.0}, {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
            {"Name": "TransactionDate", "Value": 20261202101010},
            {"Name": "PhoneNumber", "Value": int(PAYER)}]}}}}
    outcome, _purchase = settlement.record_callback(json.dumps(body).encode(), "196.201.214.200",
                                                    utcnow(), reference=purchase.reference)
    assert outcome == "duplicate"
    second = payment("NLJ7RT61SV")
    assert second.status == "credited" and second.purchase_id != purchase.id
    assert "by amount" in second.reason
    assert Grant.select().count() == 2  # one per payment: nothing lost, nothing twice
    record = CallbackRecord.get(CallbackRecord.checkout_request_id == purchase.checkout_request_id)
    assert "second payment NLJ7RT61SV" in record.detail
