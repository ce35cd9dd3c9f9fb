"""The real M-Pesa client against the Daraja emulator, over HTTP sockets."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import requests

from portal.clients import DatabaseTokenStore
from portal.models import db
from portal.mpesa import (
    MpesaBusy, MpesaClient, MpesaConfigError, MpesaTimeout, MpesaUnreachable,
    SubscriberLocked, failure_reason,
)
from portal.sim.daraja import DarajaSim
from portal.timeutil import nairobi_timestamp, utcnow

DECISION = 0.1
LATE = 0.5
pytestmark = pytest.mark.daraja(decision_delay=DECISION, late_callback_delay=LATE)


@pytest.fixture
def database(db_path):
    """Here the fresh database's file path (conftest's ``db_path``): processes open it too."""
    return db_path


@pytest.fixture
def sim(daraja_sim):
    """The Daraja emulator (conftest's ``daraja_sim``) under this file's short name."""
    return daraja_sim


def client_for(sim: DarajaSim, **kw) -> MpesaClient:
    values = dict(read_timeout=3.0, connect_timeout=1.0)
    values.update(kw)
    return MpesaClient(sim.base_url, sim.consumer_key, sim.consumer_secret, sim.shortcode,
                       sim.passkey, token_store=DatabaseTokenStore(), **values)


@pytest.fixture
def client(database, sim):
    with client_for(sim) as mpesa:
        yield mpesa


def settle(client: MpesaClient, checkout: str, timeout: float = 2.0):
    """Poll STK Query until the outcome is known, as the agent does."""
    deadline = time.monotonic() + timeout
    while True:
        result = client.stk_query(checkout)
        if result.state != "pending" or time.monotonic() > deadline:
            return result
        time.sleep(0.03)


# -- every outcome in the test-number table ------------------------------------------------

@pytest.mark.parametrize("typed, code, reason", [
    ("0708 374 149", 0, None),
    ("0712 345 678", 0, None),
    ("0110 123 456", 0, None),
    ("0700 000 001", 1, "insufficient_funds"),
    ("0700 001 032", 1032, "cancelled"),
    ("0700 002 001", 2001, "wrong_pin"),
    ("0700 001 037", 1037, "unreachable"),
    ("0700 001 019", 1019, "expired"),
])
def test_outcome_by_test_number_via_query_and_callback(client, sim, receiver, typed, code,
                                                       reason):
    pushed = client.stk_push(typed, 20, "KIBANDA", "WiFi 1h", receiver.url)
    assert pushed.checkout_request_id.startswith("ws_CO_")
    assert pushed.checkout_request_id[6:].isdigit()
    result = settle(client, pushed.checkout_request_id)
    assert result.result_code == code
    assert result.state == ("success" if code == 0 else "failed")
    (callback,) = receiver.wait(pushed.checkout_request_id)
    assert callback.result_code == code and callback.success == (code == 0)
    assert callback.merchant_request_id == pushed.merchant_request_id
    txn = sim.wait_for_callbacks(pushed.checkout_request_id)
    assert txn["decided"] and txn["outcome"] == (reason or "success")
    if code == 0:
        assert callback.amount == 20 and callback.amount_text == "20.0"
        assert callback.receipt == txn["receipt"]
        assert len(callback.receipt) == 10 and callback.receipt.isalnum()
        assert callback.receipt == callback.receipt.upper()
        assert callback.phone == txn["phone"] and callback.phone.startswith("254")
        assert len(callback.transaction_date) == 14
    else:
        assert failure_reason(callback.result_code) == reason
        assert callback.receipt is None and callback.amount is None
    assert txn["callbacks_sent"] == 1 and txn["callback_statuses"] == [200]


def test_query_is_pending_until_the_customer_answers(database, receiver):
    with DarajaSim(decision_delay=0.6) as sim, client_for(sim) as mpesa:
        pushed = mpesa.stk_push("0708374149", 20, "KIBANDA", "WiFi", receiver.url)
        # The customer has not typed the PIN yet: pending, not failed.
        pending = mpesa.stk_query(pushed.checkout_request_id)
        assert (pending.state, pending.result_code) == ("pending", None)
        assert receiver.for_checkout(pushed.checkout_request_id) == []
        assert settle(mpesa, pushed.checkout_request_id).state == "success"
        assert receiver.wait(pushed.checkout_request_id)[0].success


def test_lost_callback_still_answers_success_to_query(client, sim, receiver):
    pushed = client.stk_push("0700009001", 20, "KIBANDA", "WiFi", receiver.url)
    assert settle(client, pushed.checkout_request_id).state == "success"
    time.sleep(DECISION + 0.2)
    assert receiver.for_checkout(pushed.checkout_request_id) == []
    assert sim.transaction(pushed.checkout_request_id)["callbacks_sent"] == 0


def test_duplicated_callback_arrives_twice_with_one_receipt(client, sim, receiver):
    pushed = client.stk_push("0700009002", 20, "KIBANDA", "WiFi", receiver.url)
    first, second = receiver.wait(pushed.checkout_request_id, count=2)
    assert first == second and first.success
    assert sim.wait_for_callbacks(pushed.checkout_request_id, 2)["callbacks_sent"] == 2


def test_late_callback_arrives_after_the_query_settled(client, sim, receiver):
    pushed = client.stk_push("0700009030", 20, "KIBANDA", "WiFi", receiver.url)
    assert settle(client, pushed.checkout_request_id).state == "success"
    assert receiver.for_checkout(pushed.checkout_request_id) == []
    (late,) = receiver.wait(pushed.checkout_request_id, timeout=LATE + 2)
    assert late.success and late.receipt


def test_same_amount_to_same_phone_within_two_minutes_is_rule_limited(client, receiver):
    first = client.stk_push("0722 000 000", 20, "KIBANDA", "WiFi", receiver.url)
    again = client.stk_push("0722 000 000", 20, "KIBANDA", "WiFi", receiver.url)
    other_amount = client.stk_push("0722 000 000", 50, "KIBANDA", "WiFi", receiver.url)
    assert settle(client, first.checkout_request_id).state == "success"
    limited = settle(client, again.checkout_request_id)
    assert (limited.state, limited.result_code) == ("failed", 17)
    assert failure_reason(limited.result_code) == "limit"
    assert settle(client, other_amount.checkout_request_id).state == "success"


def test_unreachable_callback_url_is_recorded_and_the_server_keeps_serving(client, sim):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/cb"
    pushed = client.stk_push("0733 000 111", 20, "KIBANDA", "WiFi", dead)
    txn = sim.wait_for_callbacks(pushed.checkout_request_id)
    assert txn["callbacks_sent"] == 0
    assert "Connection refused" in txn["callback_errors"][0]
    assert settle(client, pushed.checkout_request_id).state == "success"


# -- the token -------------------------------------------------------------------------

def test_two_clients_in_two_threads_make_one_token_request(database, sim):
    sim.oauth_response_delay = 0.2  # both threads are surely waiting at the same time
    clients = [client_for(sim), client_for(sim)]
    start, tokens, errors = threading.Barrier(2), [], []

    def ask(mpesa):
        start.wait()
        try:
            tokens.append(mpesa.access_token())
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mpesa in clients:
        mpesa.close()
    assert errors == []
    assert sim.token_requests == 1 and len(set(tokens)) == 1


def test_two_processes_share_one_token(database, sim):
    sim.oauth_response_delay = 0.3
    script = ("import sys; from portal.models import init_db; from portal.mpesa import "
              "MpesaClient; from portal.clients import DatabaseTokenStore; "
              "init_db(sys.argv[1]); "
              "c = MpesaClient(sys.argv[2], 'kibanda-demo-key', 'kibanda-demo-secret', "
              "'174379', 'x', token_store=DatabaseTokenStore()); "
              "print(c.access_token()); c.close()")
    procs = [subprocess.Popen([sys.executable, "-c", script, database, sim.base_url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=30) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert sim.token_requests == 1
    assert outputs[0][0] == outputs[1][0]


def test_a_slow_token_fetch_does_not_lock_the_database(database, sim):
    """A payment must settle while another worker waits on Daraja for a token."""
    from portal.models import AuditLog

    sim.oauth_response_delay = 1.5
    with client_for(sim) as mpesa:
        fetcher = threading.Thread(target=mpesa.access_token)
        fetcher.start()
        time.sleep(0.3)  # the fetch is now waiting on the emulator
        other = sqlite3.connect(database, timeout=0.5)
        try:
            other.execute("INSERT INTO audit_log (at, actor, action, detail, address) "
                          "VALUES ('2026-01-01', 't', 'settle', '', '')")
            other.commit()
        finally:
            other.close()
        fetcher.join()
    with db.connection_context():
        assert AuditLog.select().where(AuditLog.action == "settle").count() == 1
    assert sim.token_requests == 1


def test_expired_token_is_refreshed_once_and_the_push_retried_once(client, sim, receiver):
    client.stk_push("0744 000 001", 20, "KIBANDA", "WiFi", receiver.url)
    assert sim.token_requests == 1
    sim.expire_tokens()
    pushed = client.stk_push("0744 000 002", 20, "KIBANDA", "WiFi", receiver.url)
    assert sim.token_requests == 2
    assert sim.push_requests == 3  # one refused with 404.001.03, one retried
    assert [t["phone"] for t in sim.transactions] == ["254744000001", "254744000002"]
    assert settle(client, pushed.checkout_request_id).state == "success"


def test_short_lived_tokens_are_renewed(database):
    with DarajaSim(decision_delay=DECISION, token_ttl=2) as sim, client_for(sim) as mpesa:
        first = mpesa.access_token()
        assert mpesa.access_token() == first
        later = utcnow() + timedelta(seconds=1.5)
        assert mpesa.access_token(later) != first
        assert sim.token_requests == 2


# -- failures a customer can meet ------------------------------------------------------

def test_read_timeout_raises_and_never_sends_a_second_push(database, sim, receiver):
    sim.push_response_delay = 0.6
    with client_for(sim, read_timeout=0.2) as mpesa:
        with pytest.raises(MpesaTimeout):
            mpesa.stk_push("0755 000 001", 20, "KIBANDA", "WiFi", receiver.url)
        time.sleep(0.5)
        assert sim.push_requests == 1 and len(sim.transactions) == 1
        # The caller settles by query: the customer did pay.
        sim.push_response_delay = 0.0
        checkout = sim.transactions[0]["checkout_request_id"]
        assert settle(mpesa, checkout).state == "success"


def test_dropped_connection_after_the_push_is_a_timeout(client, sim, receiver):
    sim.fail_next("drop")
    with pytest.raises(MpesaTimeout):
        client.stk_push("0755 000 002", 20, "KIBANDA", "WiFi", receiver.url)
    assert sim.push_requests == 1 and len(sim.transactions) == 1


def test_nothing_listening_is_unreachable(database):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with MpesaClient(base, "k", "s", "174379", "p", connect_timeout=0.5) as mpesa:
        with pytest.raises(MpesaUnreachable) as caught:
            mpesa.stk_push("0708374149", 10, "ref", "desc", "http://127.0.0.1/cb")
    assert "try again" in caught.value.message_for("en")


def test_unknown_host_is_unreachable(database):
    with MpesaClient("https://daraja.nonexistent.invalid", "k", "s", "174379", "p",
                     connect_timeout=1) as mpesa:
        with pytest.raises(MpesaUnreachable) as caught:
            mpesa.stk_query("ws_CO_1")
    assert "cannot connect" in str(caught.value)


@pytest.mark.parametrize("kind, expected", [
    ("busy", MpesaBusy), ("spike", MpesaBusy), ("quota", MpesaBusy), ("internal", MpesaBusy),
    ("locked", SubscriberLocked), ("merchant", MpesaConfigError),
    ("credentials", MpesaConfigError), ("apiproduct", MpesaConfigError),
])
def test_injected_faults_reach_the_caller_and_take_no_money(client, sim, receiver, kind,
                                                            expected):
    sim.fail_next(kind)
    with pytest.raises(expected):
        client.stk_push("0766 000 001", 20, "KIBANDA", "WiFi", receiver.url)
    assert sim.transactions == []
    pushed = client.stk_push("0766 000 001", 20, "KIBANDA", "WiFi", receiver.url)
    assert settle(client, pushed.checkout_request_id).state == "success"


def test_wrong_consumer_secret_and_wrong_passkey_are_operator_errors(database, sim, receiver):
    with MpesaClient(sim.base_url, sim.consumer_key, "wrong", sim.shortcode, sim.passkey) as bad:
        with pytest.raises(MpesaConfigError) as caught:
            bad.stk_push("0708374149", 20, "KIBANDA", "WiFi", receiver.url)
    assert "400.008.01" in str(caught.value)
    with MpesaClient(sim.base_url, sim.consumer_key, sim.consumer_secret, sim.shortcode,
                     "not-the-passkey") as bad:
        with pytest.raises(MpesaConfigError) as caught:
            bad.stk_push("0708374149", 20, "KIBANDA", "WiFi", receiver.url)
    assert "Wrong credentials" in str(caught.value)
    assert "staff" in caught.value.message_for("en")
    assert sim.transactions == []


def test_till_pushes(database, receiver):
    with DarajaSim(decision_delay=DECISION, till_number="5123456") as sim:
        with client_for(sim, mpesa_type="till", party_b="5123456") as till:
            ok = till.stk_push("0708374149", 20, "KIBANDA", "WiFi", receiver.url)
            assert settle(till, ok.checkout_request_id).state == "success"
        with client_for(sim, mpesa_type="till", party_b="5999999") as wrong:
            bad = wrong.stk_push("0708374149", 30, "KIBANDA", "WiFi", receiver.url)
            result = settle(wrong, bad.checkout_request_id)
    assert result.result_code == 2028 and failure_reason(result.result_code) == "operator"


# -- the Timestamp whatever the machine's zone ------------------------------------------

TZ_SCRIPT = """
import sys
from portal.models import init_db
from portal.mpesa import MpesaClient
init_db(sys.argv[1])
with MpesaClient(sys.argv[2], "kibanda-demo-key", "kibanda-demo-secret", "174379",
                 sys.argv[3]) as client:
    print(client.stk_push("0708374149", int(sys.argv[4]), "KIBANDA", "WiFi",
                          "http://127.0.0.1:9/cb").checkout_request_id)
"""


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_timestamp_is_nairobi_time_on_a_server_in_another_zone(database, sim, zone):
    env = dict(os.environ, TZ=zone)
    before = nairobi_timestamp()
    amount = 10 if zone == "UTC" else 11
    done = subprocess.run([sys.executable, "-c", TZ_SCRIPT, database, sim.base_url, sim.passkey,
                           str(amount)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    (txn,) = sim.transactions
    assert txn["checkout_request_id"] == done.stdout.strip()
    assert before <= txn["timestamp"] <= nairobi_timestamp()


def test_a_naive_local_timestamp_is_refused_like_daraja_does(client, sim, receiver):
    three_hours_off = utcnow() - timedelta(hours=3)
    with pytest.raises(MpesaConfigError) as caught:
        client.stk_push("0708374149", 20, "KIBANDA", "WiFi", receiver.url, now=three_hours_off)
    assert "Invalid Timestamp" in str(caught.value)


# -- the emulator's own answers, as Daraja words them -----------------------------------

def raw_push(sim: DarajaSim, client: MpesaClient, **changes):
    stamp = nairobi_timestamp()
    body = {"BusinessShortCode": 174379, "Password": client.password(stamp), "Timestamp": stamp,
            "TransactionType": "CustomerPayBillOnline", "Amount": 1, "PartyA": "254708374149",
            "PartyB": "174379", "PhoneNumber": "254708374149",
            "CallBackURL": "https://mydomain.com/path", "AccountReference": "accountref",
            "TransactionDesc": "txndesc"}
    content_type = changes.pop("content_type", "application/json")
    body.update(changes)
    return requests.post(sim.base_url + "/mpesa/stkpush/v1/processrequest",
                         data=json.dumps(body), timeout=5,
                         headers={"Authorization": "Bearer " + client.access_token(),
                                  "Content-Type": content_type})


@pytest.mark.parametrize("changes, field", [
    ({"content_type": "application/x-www-form-urlencoded"}, "BusinessShortCode"),
    ({"BusinessShortCode": "17"}, "BusinessShortCode"),
    ({"Timestamp": "2021-06-28 09:24"}, "Timestamp"),
    ({"TransactionType": "PayBill"}, "TransactionType"),
    ({"Amount": 1.5}, "Amount"), ({"Amount": 0}, "Amount"),
    ({"PartyA": "0708374149"}, "PartyA"), ({"PhoneNumber": "254808374149"}, "PhoneNumber"),
    ({"CallBackURL": "mydomain.com/path"}, "CallBackURL"),
    ({"CallBackURL": " https://mydomain.com/path"}, "CallBackURL"),
    ({"AccountReference": "x" * 13}, "AccountReference"),
    ({"TransactionDesc": "x" * 14}, "TransactionDesc"),
])
def test_emulator_refuses_invalid_fields_like_daraja(client, sim, changes, field):
    answer = raw_push(sim, client, **changes)
    assert answer.status_code == 400
    body = answer.json()
    assert body["errorCode"] == "400.002.02" and body["requestId"]
    assert body["errorMessage"] == f"Bad Request - Invalid {field}"
    assert sim.transactions == []


def test_emulator_accepts_the_documented_request(client, sim):
    answer = raw_push(sim, client)
    assert answer.status_code == 200
    body = answer.json()
    assert body["ResponseCode"] == "0" and body["CheckoutRequestID"].startswith("ws_CO_")
    assert body["CustomerMessage"] == "Success. Request accepted for processing"


def test_emulator_oauth_and_token_answers(sim):
    url = sim.base_url + "/oauth/v1/generate?grant_type=client_credentials"
    good = requests.get(url, auth=(sim.consumer_key, sim.consumer_secret), timeout=5)
    assert good.status_code == 200 and int(good.json()["expires_in"]) == 3599
    wrong = requests.get(url, auth=(sim.consumer_key, "nope"), timeout=5)
    assert wrong.status_code == 400 and wrong.json()["errorCode"] == "400.008.01"
    grant = requests.get(url.replace("client_credentials", "password"),
                         auth=(sim.consumer_key, sim.consumer_secret), timeout=5)
    assert grant.json()["errorCode"] == "400.008.02"
    stale = requests.post(sim.base_url + "/mpesa/stkpushquery/v1/query", json={}, timeout=5,
                          headers={"Authorization": "Bearer not-a-token"})
    assert stale.status_code == 404
    assert stale.json()["errorMessage"] == "Invalid Access Token"


# -- kibanda sim mpesa -------------------------------------------------------------------

def test_cli_prints_base_url_and_test_numbers_and_stops_on_sigterm(tmp_path):
    command = [sys.executable, "-c", "from portal.cli import main; main()", "sim", "mpesa",
               "--port", "0", "--decision-delay", "0.1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=os.getcwd())) as proc:
        try:
            first = proc.stdout.readline()
            assert "Daraja emulator at http://127.0.0.1:" in first
            base = first.split(" at ")[1].split()[0]
            answer = requests.get(base + "/oauth/v1/generate?grant_type=client_credentials",
                                  auth=("kibanda-demo-key", "kibanda-demo-secret"), timeout=5)
            assert answer.status_code == 200 and answer.json()["access_token"]
        finally:
            proc.send_signal(signal.SIGTERM)
        # Read through the same buffered file: readline() may already hold the rest.
        out = first + proc.stdout.read()
        err = proc.stderr.read()
        assert proc.wait(timeout=10) == 0, err
    assert "| 254700001032 | cancelled by user (1032) |" in out
    assert "254708374149" in out
