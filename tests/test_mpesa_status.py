"""Transaction Status results (posted to the ResultURL) read by key into the shape of a
C2B confirmation; failures and unfinished payments give nothing; junk is refused."""
from __future__ import annotations

import json

import pytest

from portal.errors import MalformedCallback
from portal.mpesa.status import parse_status_result

RESULT = {"Result": {
    "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
    "OriginatorConversationID": "1236-7134259-1", "ConversationID": "AG_20231121_0000",
    "TransactionID": "RKL51ZDR4F",
    "ResultParameters": {"ResultParameter": [
        {"Key": "ReceiptNo", "Value": "RKL51ZDR4F"},
        {"Key": "DebitPartyName", "Value": "254708374149 - NICHOLAS SONGOK"},
        {"Key": "FinalisedTime", "Value": 20231121121325},
        {"Key": "TransactionStatus", "Value": "Completed"},
        {"Key": "ReasonType", "Value": "Pay Bill"},
        {"Key": "Amount", "Value": 50}]},
    "ReferenceData": {"ReferenceItem": {"Key": "Occasion"}}}}


def test_a_completed_payment_reads_as_a_confirmation():
    payment = parse_status_result(json.dumps(RESULT))
    assert payment == {"TransactionType": "Pay Bill", "TransID": "RKL51ZDR4F",
                       "TransAmount": "50", "TransTime": "20231121121325",
                       "BillRefNumber": "", "MSISDN": "254708374149", "FirstName": ""}


def test_not_found_or_not_completed_gives_nothing():
    missing = {"Result": {**RESULT["Result"], "ResultCode": "2001"}}
    assert parse_status_result(json.dumps(missing)) is None
    pending = json.loads(json.dumps(RESULT))
    pending["Result"]["ResultParameters"]["ResultParameter"][3]["Value"] = "Pending"
    assert parse_status_result(json.dumps(pending)) is None


@pytest.mark.parametrize("junk", [b"", b"[]", b'{"Result": {}}', b"\xff"])
def test_junk_is_refused(junk):
    with pytest.raises(MalformedCallback):
        parse_status_result(junk)
