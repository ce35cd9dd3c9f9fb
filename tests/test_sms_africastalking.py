"""The Africa's Talking client (portal/sms/africastalking.py): the documented request and
answers (``responses`` replaying Africa's Talking's documented bodies), and the emulator
over real HTTP for refusals, sender ids and faults."""
from __future__ import annotations

import logging
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
import requests
import responses

from portal.sms.africastalking import LIVE_URL, SANDBOX_URL, AfricasTalking, base_url
from portal.sms.provider import Accepted, Refused, SmsRetryable

KEY = "atsk_0123456789abcdef"
ACCEPTED = {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000", "Recipients": [
    {"statusCode": 101, "number": "+254711000001", "status": "Success", "cost": "KES 0.8000",
     "messageId": "ATXid_4bd7b3a6e1f6b6a0a3d6c1b5f6e2d7c8"}]}}


def refused(code: int, status: str) -> dict:
    return {"SMSMessageData": {"Message": "Sent to 0/1 Total Cost: 0", "Recipients": [
        {"statusCode": code, "number": "+254711000001", "status": status, "cost": "0",
         "messageId": "None"}]}}


def test_base_urls_sandbox_live_and_configured():
    assert base_url("sandbox") == SANDBOX_URL and base_url("mamanjeri") == LIVE_URL
    assert base_url("sandbox", "http://127.0.0.1:9/") == "http://127.0.0.1:9"


@responses.activate
def test_the_documented_request_and_an_accepted_answer(caplog):
    responses.post(LIVE_URL + "/version1/messaging", json=ACCEPTED, status=201)
    client = AfricasTalking("mamanjeri", KEY, sender_id="KIBANDA")
    with caplog.at_level(logging.DEBUG):
        outcome = client.send("+254711000001", "Mama Njeri Cafe: 1 hour paid.")
    assert outcome == Accepted("ATXid_4bd7b3a6e1f6b6a0a3d6c1b5f6e2d7c8", Decimal("0.8000"), 1,
                               "Success")
    sent = responses.calls[0].request
    assert sent.headers["apiKey"] == KEY and sent.headers["Accept"] == "application/json"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent.body) == {"username": ["mamanjeri"], "to": ["+254711000001"],
                                   "message": ["Mama Njeri Cafe: 1 hour paid."],
                                   "from": ["KIBANDA"]}
    assert KEY not in caplog.text and KEY not in repr(client)


@pytest.mark.parametrize("code, status", [(402, "InvalidSenderId"), (403, "InvalidPhoneNumber"),
                                          (404, "UnsupportedNumberType"),
                                          (405, "InsufficientBalance"),
                                          (406, "UserInBlacklist"), (407, "CouldNotRoute"),
                                          (409, "DoNotDisturbRejection")])
@responses.activate
def test_permanent_refusals(code, status):
    responses.post(SANDBOX_URL + "/version1/messaging", json=refused(code, status), status=201)
    assert AfricasTalking("sandbox", KEY).send("+254711000001", "x") == Refused(code, status)


@pytest.mark.parametrize("code, status", [(401, "RiskHold"), (500, "InternalServerError"),
                                          (501, "GatewayError"), (502, "RejectedByGateway")])
@responses.activate
def test_retryable_refusals(code, status):
    responses.post(SANDBOX_URL + "/version1/messaging", json=refused(code, status), status=201)
    with pytest.raises(SmsRetryable) as error:
        AfricasTalking("sandbox", KEY).send("+254711000001", "x")
    assert status in str(error.value) and not error.value.network


@responses.activate
def test_a_request_refused_as_a_whole_and_http_errors():
    url = SANDBOX_URL + "/version1/messaging"
    responses.post(url, json={"SMSMessageData": {"Message": "InvalidSenderId",
                                                 "Recipients": []}}, status=201)
    assert AfricasTalking("sandbox", KEY).send("+254711000001", "x") == Refused(0, "InvalidSenderId")
    responses.replace(responses.POST, url, body="Service Unavailable", status=503)
    with pytest.raises(SmsRetryable):
        AfricasTalking("sandbox", KEY).send("+254711000001", "x")
    responses.replace(responses.POST, url, body="The supplied authentication is invalid",
                      status=401)
    with pytest.raises(SmsRetryable) as error:
        AfricasTalking("sandbox", KEY).send("+254711000001", "x")
    assert "API key" in str(error.value) and KEY not in str(error.value)
    responses.replace(responses.POST, url, body=requests.ConnectTimeout("timed out"))
    with pytest.raises(SmsRetryable) as error:
        AfricasTalking("sandbox", KEY).send("+254711000001", "x")
    assert error.value.network and not error.value.maybe_sent


def test_against_the_emulator_refusals_sender_ids_and_faults(sms_sim):
    client = AfricasTalking(sms_sim.username, sms_sim.api_key, base=sms_sim.url,
                            read_timeout=2.0)
    accepted = client.send("+254711000001", "Your code is 12345678")
    assert isinstance(accepted, Accepted) and accepted.cost > 0
    assert sms_sim.message(accepted.message_id)["to"] == "+254711000001"
    assert client.send("+254711000406", "x") == Refused(406, "UserInBlacklist")
    foreign = AfricasTalking(sms_sim.username, sms_sim.api_key, base=sms_sim.url,
                             sender_id="NOTOURS")
    assert foreign.send("+254711000001", "x").reason == "InvalidSenderId"
    for mode in ("http500", "http503", "drop"):
        sms_sim.fail_next(1, mode)
        with pytest.raises(SmsRetryable):
            client.send("+254711000001", "x")
    sms_sim.set_slow(5)
    sms_sim.fail_next(1, "slow")
    with pytest.raises(SmsRetryable) as error:
        client.send("+254711000001", "x")
    assert error.value.maybe_sent
    wrong_key = AfricasTalking(sms_sim.username, "not-the-key", base=sms_sim.url)
    with pytest.raises(SmsRetryable):
        wrong_key.send("+254711000001", "x")
    for each in (client, foreign, wrong_key):
        each.close()
