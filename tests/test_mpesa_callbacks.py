"""Daraja's STK callbacks, as documented, parsed; malformed ones refused."""
from __future__ import annotations

import json

import pytest

from portal.errors import ValidationError
from portal.mpesa import MalformedCallback, failure_reason, parse_callback

SUCCESS_CALLBACK = """{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1",
 "CheckoutRequestID":"ws_CO_191220191020363925","ResultCode":0,
 "ResultDesc":"The service request is processed successfully.",
 "CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.00},
 {"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},
 {"Name":"TransactionDate","Value":20191219102115},
 {"Name":"PhoneNumber","Value":254708374149}]}}}}"""
FAILED_CALLBACK = """{"Body":{"stkCallback":{"MerchantRequestID":"f1e2-4b95-a71d-b30d3cdbb7a7942864",
 "CheckoutRequestID":"ws_CO_21072024125243250722943992","ResultCode":1032,
 "ResultDesc":"Request cancelled by user"}}}"""


@pytest.mark.parametrize("as_type", [bytes, str, json.loads])
def test_documented_success_callback(as_type):
    body = as_type(SUCCESS_CALLBACK.encode()) if as_type is bytes else as_type(SUCCESS_CALLBACK)
    result = parse_callback(body)
    assert result.success and result.result_code == 0
    assert result.checkout_request_id == "ws_CO_191220191020363925"
    assert result.merchant_request_id == "29115-34620561-1"
    assert result.amount == 1 and result.receipt == "NLJ7RT61SV"
    assert result.phone == "254708374149" and result.transaction_date == "20191219102115"
    assert result.balance is None


def test_documented_failure_callback_has_no_metadata():
    result = parse_callback(FAILED_CALLBACK)
    assert not result.success and result.result_code == 1032
    assert result.result_desc == "Request cancelled by user"
    assert (result.amount, result.receipt, result.phone) == (None, None, None)
    assert failure_reason(result.result_code) == "cancelled"


def callback_with(items, code=0):
    return {"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": "ws_CO_9",
                                     "ResultCode": code, "ResultDesc": "x",
                                     "CallbackMetadata": {"Item": items}}}}


def test_items_are_found_by_name_in_any_order_with_balance_variants():
    items = [{"Name": "PhoneNumber", "Value": 254110123456}, {"Name": "Balance"},
             {"Name": "TransactionDate", "Value": 20240721125243},
             {"Name": "MpesaReceiptNumber", "Value": "SGL7RT61SV"},
             {"Name": "Amount", "Value": 50}]
    result = parse_callback(callback_with(items, code="0"))
    assert result.success and result.amount == 50 and result.phone == "254110123456"
    assert result.balance is None and result.receipt == "SGL7RT61SV"
    items[1] = {"Name": "Balance", "Value": "{Amount={BasicAmount=46.00, MinimumAmount=4600}}"}
    assert parse_callback(callback_with(items)).balance.startswith("{Amount=")


def test_a_short_payment_is_rounded_down_so_the_mismatch_shows():
    body = json.dumps(callback_with([{"Name": "Amount", "Value": 9.99}]))
    result = parse_callback(body)
    assert result.amount == 9 and result.amount_text == "9.99"


@pytest.mark.parametrize("body", [
    b"not json", b"\xff\xfe", "[]", {"Body": {}}, {"Body": "x"},
    {"Body": {"stkCallback": {"ResultCode": 0}}},
    {"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": "abc"}}},
    callback_with([{"Value": 1}]),
    callback_with([{"Name": "Amount", "Value": "lots"}]),
    callback_with("not a list"),
    # Hostile numbers and shapes: refused here, never a crash further on.
    SUCCESS_CALLBACK.replace('"Value":1.00', '"Value":1e999'),
    SUCCESS_CALLBACK.replace('"Value":1.00', '"Value":' + "9" * 30),
    SUCCESS_CALLBACK.replace('"Value":1.00', '"Value":-5'),
    SUCCESS_CALLBACK.replace('"Value":1.00', '"Value":NaN'),
    SUCCESS_CALLBACK.replace('"Value":1.00', '"Value":Infinity'),
    SUCCESS_CALLBACK.replace('"ResultCode":0', '"ResultCode":' + "9" * 400),
    SUCCESS_CALLBACK.replace('"ResultCode":0', '"ResultCode":1e999'),
    SUCCESS_CALLBACK.replace("254708374149", "2" * 400),
    "[" * 5000 + "]" * 5000,
    SUCCESS_CALLBACK + " " * 40_000,
], ids=lambda body: str(body)[:30])
def test_malformed_callbacks_are_refused(body):
    with pytest.raises(MalformedCallback) as caught:
        parse_callback(body)
    assert isinstance(caught.value, ValidationError)
