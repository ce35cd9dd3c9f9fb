"""The Daraja emulator's C2B side over HTTP (plain requests, no client of ours): URL
registration and the sandbox's refusal, payments from the menu (validation asked first,
v1/v2 bodies, lost confirmations; a refusing validation is in test_web_c2b.py), Pull Transactions (registration, the 48 h window, OffSetValue
paging), Transaction Status, and the control interface's "pay from the menu"."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta, timezone

import pytest
import requests
from helpers import CallbackReceiver

from portal.timeutil import NAIROBI, utcnow

pytestmark = pytest.mark.daraja(control_port=0)
PHONE = "254712000001"


def token(sim) -> str:
    basic = base64.b64encode(f"{sim.consumer_key}:{sim.consumer_secret}".encode()).decode()
    return requests.get(f"{sim.base_url}/oauth/v1/generate?grant_type=client_credentials",
                        headers={"Authorization": f"Basic {basic}"}, timeout=5).json()[
        "access_token"]


def api(sim, path: str, body: dict):
    return requests.post(sim.base_url + path, json=body, timeout=5,
                         headers={"Authorization": f"Bearer {token(sim)}"})


def register(sim, receiver: CallbackReceiver, version: int = 2, **extra):
    return api(sim, f"/mpesa/c2b/v{version}/registerurl", {
        "ShortCode": sim.shortcode, "ResponseType": "Completed",
        "ConfirmationURL": receiver.base + "/confirm",
        "ValidationURL": receiver.base + "/validate", **extra})


def nairobi(moment) -> str:
    return moment.replace(tzinfo=timezone.utc).astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S")


def pull_query(sim, offset: int = 0, start=None, end=None):
    now = utcnow()
    return api(sim, "/pulltransactions/v1/query", {
        "ShortCode": sim.shortcode, "StartDate": nairobi(start or now - timedelta(hours=1)),
        "EndDate": nairobi(end or now + timedelta(minutes=1)), "OffSetValue": str(offset)})


def test_registration_keeps_the_urls_and_the_sandbox_refuses(daraja_sim, receiver):
    answer = register(daraja_sim, receiver)
    assert answer.status_code == 200 and answer.json()["ResponseCode"] == "0"
    assert daraja_sim.c2b.registrations[daraja_sim.shortcode]["version"] == 2
    assert register(daraja_sim, receiver, ResponseType="Maybe").status_code == 400
    daraja_sim.c2b.sandbox = True
    refused = register(daraja_sim, receiver)
    assert refused.status_code == 400
    assert "not allowed in the sandbox" in refused.json()["errorMessage"]


def test_a_menu_payment_asks_validation_then_posts_the_documented_confirmation(
        daraja_sim, receiver):
    register(daraja_sim, receiver)
    paid = daraja_sim.pay_from_menu(PHONE, 20, "K7P2Q")
    assert (paid["validation"], paid["confirmation_status"], paid["taken"]) == (
        "accepted", 200, True)
    validation, confirmation = (json.loads(b) for b in receiver.bodies)
    assert receiver.targets == ["/validate", "/confirm"] and validation == confirmation
    assert confirmation["TransID"] == paid["receipt"] and confirmation["TransAmount"] == "20.00"
    assert confirmation["BillRefNumber"] == "K7P2Q" and confirmation["MSISDN"] == "2547 ***** 001"
    assert len(confirmation["TransTime"]) == 14 and confirmation["TransactionType"] == "Pay Bill"


def test_v1_hashes_the_payer_and_a_lost_confirmation_is_never_posted(daraja_sim, receiver):
    register(daraja_sim, receiver, version=1)
    daraja_sim.pay_from_menu(PHONE, 20, "K7P2Q")
    assert json.loads(receiver.bodies[-1])["MSISDN"] == hashlib.sha256(PHONE.encode()).hexdigest()
    before = len(receiver.bodies)
    lost = daraja_sim.pay_from_menu(PHONE, 30, "K7P2Q", confirmation="lost")
    assert lost["confirmation_status"] is None and len(receiver.bodies) == before + 1  # validation
    assert lost["receipt"] in {p["receipt"] for p in daraja_sim.c2b.payments}


def test_pull_needs_registration_then_pages_the_window(daraja_sim):
    assert pull_query(daraja_sim).status_code == 400  # not registered
    registered = api(daraja_sim, "/pulltransactions/v1/register", {
        "ShortCode": daraja_sim.shortcode, "RequestType": "Pull",
        "NominatedNumber": "254708374149", "CallBackURL": "https://example.com/pull"})
    assert registered.status_code == 200
    daraja_sim.c2b.pull_page_size = 2
    receipts = [daraja_sim.pay_from_menu(PHONE, 10 + i, "WIFI")["receipt"] for i in range(5)]
    seen = []
    for offset in (0, 2, 4, 6):
        page = pull_query(daraja_sim, offset).json()["Response"][0]
        seen.extend(item["transactionId"] for item in page)
    assert sorted(seen) == sorted(receipts)
    record = pull_query(daraja_sim).json()["Response"][0][0]
    assert record["msisdn"] == int(PHONE) and record["billreference"] == "WIFI"
    assert record["transactiontype"] == "c2b-pay-bill-debit"
    too_old = pull_query(daraja_sim, start=utcnow() - timedelta(hours=49))
    assert too_old.status_code == 400 and "StartDate" in too_old.json()["errorMessage"]
    empty = pull_query(daraja_sim, start=utcnow() - timedelta(hours=3),
                       end=utcnow() - timedelta(hours=2))
    assert empty.json()["Response"] == [[]]


def test_transaction_status_posts_its_result_to_the_result_url(daraja_sim, receiver):
    paid = daraja_sim.pay_from_menu(PHONE, 50, till=True)
    body = {"Initiator": "api", "SecurityCredential": "secret", "CommandID":
            "TransactionStatusQuery", "TransactionID": paid["receipt"],
            "PartyA": daraja_sim.shortcode, "IdentifierType": "4",
            "ResultURL": receiver.base + "/result", "QueueTimeOutURL": receiver.base + "/late",
            "Remarks": "r", "Occasion": "o"}
    assert api(daraja_sim, "/mpesa/transactionstatus/v1/query", {**body, "IdentifierType": "1"}
               ).status_code == 400
    accepted = api(daraja_sim, "/mpesa/transactionstatus/v1/query", body)
    assert accepted.status_code == 200 and accepted.json()["ResponseCode"] == "0"
    with receiver.arrived:
        receiver.arrived.wait_for(lambda: receiver.bodies, timeout=5)
    result = json.loads(receiver.bodies[0])["Result"]
    values = {p["Key"]: p["Value"] for p in result["ResultParameters"]["ResultParameter"]}
    assert (values["ReceiptNo"], values["Amount"], values["TransactionStatus"]) == (
        paid["receipt"], 50, "Completed")
    assert values["DebitPartyName"].startswith(PHONE)


def test_the_control_interface_pays_from_the_menu(daraja_sim, receiver):
    register(daraja_sim, receiver)
    control = daraja_sim.control_url
    paid = requests.post(f"{control}/c2b/pay", json={"phone": "0712000001", "amount": 10,
                                                     "account": "K7P2Q"}, timeout=5)
    assert paid.status_code == 200 and paid.json()["confirmation_status"] == 200
    for wrong, why in [({"phone": PHONE, "amount": 10}, "account"),
                       ({"phone": PHONE, "amount": 0, "account": "A"}, "amount"),
                       ({"phone": "12", "amount": 10, "till": True}, ""),
                       ({"phone": PHONE, "amount": 10, "till": True, "confirmation": "x"},
                        "confirmation")]:
        refused = requests.post(f"{control}/c2b/pay", json=wrong, timeout=5)
        assert refused.status_code == 400 and why in refused.json()["error"]
    listed = requests.get(f"{control}/c2b/payments", timeout=5).json()
    assert [p["receipt"] for p in listed["payments"]] == [paid.json()["receipt"]]
    assert listed["registrations"][daraja_sim.shortcode]["version"] == 2
