"""The Daraja emulator's HTTP control interface: requests to the control port, and what the
M-Pesa client and a callback receiver then meet."""
from __future__ import annotations

import socket
import time

import pytest
import requests

from portal.mpesa import MpesaBusy, MpesaClient, MpesaTimeout
from portal.sim.daraja import DarajaSim

DECISION = 0.1
pytestmark = pytest.mark.daraja(decision_delay=DECISION, control_port=0)
PHONE, OTHER = "254712000001", "254712000002"


@pytest.fixture
def sim(daraja_sim):
    """The Daraja emulator (conftest's ``daraja_sim``), its control port on."""
    return daraja_sim


def client_for(sim: DarajaSim, read_timeout: float = 3.0) -> MpesaClient:
    return MpesaClient(sim.base_url, sim.consumer_key, sim.consumer_secret, sim.shortcode,
                       sim.passkey, read_timeout=read_timeout, connect_timeout=1.0)


@pytest.fixture
def mpesa(sim):
    with client_for(sim) as client:
        yield client


def control(sim, method: str, path: str, body: dict | None = None, expect: int = 200):
    """One control request; checks the status and returns the JSON answer."""
    answer = requests.request(method, sim.control_url + path, json=body, timeout=10)
    assert answer.status_code == expect, answer.text
    return answer.json()


def push(mpesa, receiver, phone=PHONE, amount=20):
    return mpesa.stk_push(phone, amount, "K7P2Q", "WiFi 1h", receiver.url + "?ref=K7P2Q")


def settle(mpesa, checkout: str, timeout: float = 3.0):
    """Poll STK Query until the outcome is known, as the agent does."""
    deadline = time.monotonic() + timeout
    while True:
        result = mpesa.stk_query(checkout)
        if result.state != "pending" or time.monotonic() > deadline:
            return result
        time.sleep(0.03)


# --- status and settings ------------------------------------------------------------

def test_status_and_settings(sim):
    status = control(sim, "GET", "/status")
    assert status["base_url"] == sim.base_url and status["control_port"] == sim.control_port
    assert status["push_requests"] == 0 and status["transactions"] == 0
    assert control(sim, "GET", "/settings") == {
        "decision_delay": DECISION, "callback_delay": 0.0, "late_callback_delay": 30.0,
        "push_response_delay": 0.0}


def test_the_control_port_is_off_unless_asked():
    with DarajaSim() as sim:
        assert sim.control_port is None and sim.control_url is None


def test_decision_delay_keeps_the_push_pending(sim, mpesa, receiver):
    control(sim, "POST", "/settings", {"decision_delay": 0.6})
    pushed = push(mpesa, receiver)
    assert mpesa.stk_query(pushed.checkout_request_id).state == "pending"
    assert receiver.for_checkout(pushed.checkout_request_id) == []
    assert settle(mpesa, pushed.checkout_request_id).state == "success"


@pytest.mark.parametrize("body, error", [
    ({"decision_delay": -1}, "decision_delay must be 0 or more"),
    ({"decision_delay": "2"}, "decision_delay must be a number"),
    ({"callback_delay": 1, "decision": 2}, "unknown field decision; known: callback_delay, "
     "decision_delay, late_callback_delay, push_response_delay"),
])
def test_a_wrong_setting_is_refused_and_changes_nothing(sim, body, error):
    assert control(sim, "POST", "/settings", body, expect=400) == {"error": error}
    assert control(sim, "GET", "/settings")["callback_delay"] == 0.0


# --- faults on the next requests ----------------------------------------------------------

def test_a_queued_fault_answers_the_next_push_then_is_used_up(sim, mpesa, receiver):
    queued = control(sim, "POST", "/faults", {"kind": "spike", "on": "push"})
    assert queued["push"] == ["spike"]
    with pytest.raises(MpesaBusy) as caught:
        push(mpesa, receiver)
    assert caught.value.error_code == "500.003.02"
    assert control(sim, "GET", "/faults")["push"] == []
    assert settle(mpesa, push(mpesa, receiver).checkout_request_id).state == "success"


def test_queued_faults_on_query_and_clearing_them(sim, mpesa, receiver):
    pushed = push(mpesa, receiver)
    control(sim, "POST", "/faults", {"kind": "quota", "on": "query", "count": 3})
    with pytest.raises(MpesaBusy):
        mpesa.stk_query(pushed.checkout_request_id)
    assert control(sim, "DELETE", "/faults")["query"] == []
    assert settle(mpesa, pushed.checkout_request_id).state == "success"


@pytest.mark.parametrize("body, error", [
    ({"kind": "slow"}, "kind must be one of apiproduct, busy, credentials, drop, internal, "
     "locked, merchant, quota, spike, token"),
    ({"kind": "busy", "on": "callback"}, "on must be one of push, query, oauth"),
    ({"kind": "busy", "count": 0}, "count must be 1 or more"),
])
def test_a_wrong_fault_is_refused(sim, body, error):
    assert control(sim, "POST", "/faults", body, expect=400) == {"error": error}
    assert control(sim, "GET", "/faults") == {
        "push": [], "query": [], "oauth": [], "push_answer_delays": []}


def test_the_next_push_answered_late_times_the_client_out_but_was_taken(sim, receiver):
    control(sim, "POST", "/next-push", {"answer": 0.6})
    with client_for(sim, read_timeout=0.2) as mpesa:
        with pytest.raises(MpesaTimeout):
            push(mpesa, receiver)
        (taken,) = control(sim, "GET", "/transactions")["transactions"]
        # the customer still pays: the push is settled by query
        assert settle(mpesa, taken["checkout_request_id"]).state == "success"
        # only the next push was slow
        assert push(mpesa, receiver, amount=30).checkout_request_id.startswith("ws_CO_")


def test_the_next_push_never_answered(sim, mpesa, receiver):
    assert control(sim, "POST", "/next-push", {"answer": "never"})["push"] == ["drop"]
    with pytest.raises(MpesaTimeout):
        push(mpesa, receiver)
    assert len(control(sim, "GET", "/transactions")["transactions"]) == 1


@pytest.mark.parametrize("body, error", [
    ({}, 'answer is missing: seconds, or "never"'),
    ({"answer": "later"}, "answer must be a number"),
    ({"answer": -2}, "answer must be 0 or more"),
])
def test_a_wrong_next_push_is_refused(sim, body, error):
    assert control(sim, "POST", "/next-push", body, expect=400) == {"error": error}


# --- rules per phone --------------------------------------------------------------------

def test_every_push_to_a_phone_answered_late_until_cleared(sim, receiver):
    rules = control(sim, "POST", "/phones/0712 000 001", {"push_answer": 0.5})
    assert rules == {"phone": PHONE, "rules": {"push_answer": 0.5}}
    assert control(sim, "GET", "/phones") == {"phones": {PHONE: {"push_answer": 0.5}}}
    with client_for(sim, read_timeout=0.2) as mpesa:
        for amount in (20, 30):
            with pytest.raises(MpesaTimeout):
                push(mpesa, receiver, amount=amount)
        push(mpesa, receiver, phone=OTHER)
        control(sim, "DELETE", f"/phones/{PHONE}")
        push(mpesa, receiver, amount=40)
    assert control(sim, "GET", "/phones") == {"phones": {}}


def test_every_push_to_a_phone_never_answered(sim, mpesa, receiver):
    control(sim, "POST", f"/phones/{PHONE}", {"push_answer": "never"})
    for amount in (20, 30):
        with pytest.raises(MpesaTimeout):
            push(mpesa, receiver, amount=amount)
    assert push(mpesa, receiver, phone=OTHER).checkout_request_id


def test_a_query_outage_for_a_phone_answers_busy_then_ends(sim, mpesa, receiver):
    mine, other = push(mpesa, receiver), push(mpesa, receiver, phone=OTHER)
    time.sleep(DECISION + 0.05)
    ends = time.monotonic() + 1.0
    control(sim, "POST", f"/phones/{PHONE}", {"query_outage": 1.0})
    with pytest.raises(MpesaBusy) as caught:
        mpesa.stk_query(mine.checkout_request_id)
    assert caught.value.error_code == "500.003.02"
    assert mpesa.stk_query(other.checkout_request_id).state == "success"
    time.sleep(max(0.0, ends - time.monotonic()) + 0.05)
    assert mpesa.stk_query(mine.checkout_request_id).state == "success"


def test_a_query_outage_until_cleared(sim, mpesa, receiver):
    pushed = push(mpesa, receiver)
    assert control(sim, "POST", f"/phones/{PHONE}", {"query_outage": True})["rules"] == {
        "query_outage": True}
    time.sleep(DECISION + 0.3)
    with pytest.raises(MpesaBusy):
        mpesa.stk_query(pushed.checkout_request_id)
    control(sim, "POST", f"/phones/{PHONE}", {"query_outage": False})
    assert mpesa.stk_query(pushed.checkout_request_id).state == "success"


def test_a_phones_callback_lost(sim, mpesa, receiver):
    control(sim, "POST", f"/phones/{PHONE}", {"callback": "lost"})
    pushed = push(mpesa, receiver)
    assert settle(mpesa, pushed.checkout_request_id).state == "success"
    time.sleep(0.3)
    assert receiver.for_checkout(pushed.checkout_request_id) == []
    report = control(sim, "GET", f"/transactions/{pushed.checkout_request_id}")
    assert report["callback"] == "lost" and report["callbacks_sent"] == 0


def test_a_phones_callback_sent_twice(sim, mpesa, receiver):
    control(sim, "POST", f"/phones/{PHONE}", {"callback": "twice"})
    pushed = push(mpesa, receiver)
    first, second = receiver.wait(pushed.checkout_request_id, count=2)
    assert first == second and first.success
    sim.wait_for_callbacks(pushed.checkout_request_id, 2)
    report = control(sim, "GET", f"/transactions/{pushed.checkout_request_id}")
    assert report["callback_statuses"] == [200, 200]


def test_a_phones_callback_delayed(sim, mpesa, receiver):
    control(sim, "POST", f"/phones/{PHONE}", {"callback_delay": 0.6})
    pushed = push(mpesa, receiver)
    started = time.monotonic()
    assert settle(mpesa, pushed.checkout_request_id).state == "success"
    assert receiver.for_checkout(pushed.checkout_request_id) == []
    (late,) = receiver.wait(pushed.checkout_request_id, timeout=3)
    assert late.success and time.monotonic() - started >= 0.5


def test_a_test_numbers_late_callback_made_prompt(sim, mpesa, receiver):
    control(sim, "POST", "/phones/254700009030", {"callback": "once"})
    pushed = push(mpesa, receiver, phone="254700009030")
    assert receiver.wait(pushed.checkout_request_id, timeout=2)  # not 30 s late


@pytest.mark.parametrize("path, body, status, error", [
    ("/phones/0812000001", {"callback": "lost"}, 400,
     "not a phone Daraja accepts (2547XXXXXXXX or 2541XXXXXXXX): '0812000001'"),
    (f"/phones/{PHONE}", {"callback": "sometimes"}, 400,
     "callback must be one of once, lost, twice"),
    (f"/phones/{PHONE}", {"query_outage": "soon"}, 400,
     "query_outage must be a number of seconds, 0 or more"),
    (f"/phones/{PHONE}", {"callback_delay": -1}, 400,
     "callback_delay must be a number of seconds, 0 or more"),
    (f"/phones/{PHONE}", {"drop": True}, 400,
     "unknown field drop; known: callback, callback_delay, push_answer, query_outage"),
])
def test_a_wrong_phone_rule_is_refused(sim, path, body, status, error):
    assert control(sim, "POST", path, body, expect=status) == {"error": error}
    assert control(sim, "GET", "/phones") == {"phones": {}}
    assert control(sim, "DELETE", f"/phones/{PHONE}", expect=404) == {
        "error": f"no rules for {PHONE}"}


# --- the read-out -------------------------------------------------------------------------

def test_every_transaction_read_out(sim, receiver):
    control(sim, "POST", "/settings", {"decision_delay": 0.4})
    receiver.status = 500
    with client_for(sim) as mpesa:
        paid = push(mpesa, receiver)
        cancelled = push(mpesa, receiver, phone="254700001032")
        (pending, _) = control(sim, "GET", "/transactions")["transactions"]
        assert pending["outcome"] == "pending" and pending["result_code"] is None
        assert pending["receipt"] is None and pending["callback_statuses"] == []
        sim.wait_for_callbacks(paid.checkout_request_id)
        sim.wait_for_callbacks(cancelled.checkout_request_id)
    first, second = control(sim, "GET", "/transactions")["transactions"]
    assert first["checkout_request_id"] == paid.checkout_request_id
    assert (first["phone"], first["amount"], first["account_reference"]) == (PHONE, 20, "K7P2Q")
    assert first["callback_url"] == receiver.url + "?ref=K7P2Q"
    assert (first["outcome"], first["result_code"]) == ("success", 0)
    assert len(first["receipt"]) == 10 and first["callback_statuses"] == [500]
    assert (second["outcome"], second["result_code"], second["receipt"]) == (
        "cancelled", 1032, None)
    assert second["result_desc"] == "Request cancelled by user"
    only = control(sim, "GET", "/transactions?phone=0700001032")["transactions"]
    assert [t["checkout_request_id"] for t in only] == [cancelled.checkout_request_id]
    assert control(sim, "GET", "/transactions/ws_CO_0", expect=404) == {
        "error": "no push ws_CO_0"}


def test_expired_tokens_make_the_client_fetch_a_new_one(sim, mpesa, receiver):
    push(mpesa, receiver)
    assert control(sim, "POST", "/tokens/expire") == {"expired": True}
    push(mpesa, receiver, amount=30)
    assert control(sim, "GET", "/status")["token_requests"] == 2


def test_a_taken_control_port_stops_the_emulator_from_starting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        sim = DarajaSim(control_port=taken.getsockname()[1])
        with pytest.raises(OSError):
            sim.start()
    with pytest.raises(requests.ConnectionError):  # the Daraja port was closed again
        requests.get(sim.base_url + "/oauth/v1/generate", timeout=1)
