"""The Daraja emulator's fault plan, used in-process (``sim.set_phone``, ``delay_next_push``)
the way tests do, and what the M-Pesa client then meets."""
from __future__ import annotations

import time

import pytest

from portal.mpesa import MpesaClient, MpesaTimeout
from portal.sim.daraja_faults import daraja_phone

pytestmark = pytest.mark.daraja(decision_delay=0.05)
PHONE = "254712000001"


def client_for(sim, read_timeout: float = 3.0) -> MpesaClient:
    return MpesaClient(sim.base_url, sim.consumer_key, sim.consumer_secret, sim.shortcode,
                       sim.passkey, read_timeout=read_timeout, connect_timeout=1.0)


@pytest.mark.parametrize("typed", ["254712000001", "0712 000 001", "+254 712-000-001",
                                   "(0712) 000001"])
def test_phones_are_taken_in_the_usual_forms(typed):
    assert daraja_phone(typed) == PHONE


@pytest.mark.parametrize("typed", ["0812000001", "25471200000", "712000001", "phone"])
def test_other_numbers_are_refused(typed):
    with pytest.raises(ValueError):
        daraja_phone(typed)


def test_a_phone_rule_set_and_cleared_in_process(daraja_sim, receiver):
    sim = daraja_sim
    assert sim.set_phone("0712 000 001", callback="lost", callback_delay=2) == {
        "callback": "lost", "callback_delay": 2.0}
    with client_for(sim) as mpesa:
        lost = mpesa.stk_push(PHONE, 20, "REF", "WiFi", receiver.url)
        assert sim.set_phone(PHONE, callback=None, callback_delay=None) == {}
        assert sim.fault_plan.phones() == {}
        sent = mpesa.stk_push(PHONE, 30, "REF", "WiFi", receiver.url)
        assert receiver.wait(sent.checkout_request_id)
    assert receiver.for_checkout(lost.checkout_request_id) == []
    assert sim.transaction(lost.checkout_request_id)["delivery"] == "lost"


def test_the_next_pushes_answered_late_in_process(daraja_sim, receiver):
    daraja_sim.delay_next_push(0.5, n=2)
    with client_for(daraja_sim, read_timeout=0.2) as mpesa:
        for amount in (20, 30):
            with pytest.raises(MpesaTimeout):
                mpesa.stk_push(PHONE, amount, "REF", "WiFi", receiver.url)
        started = time.monotonic()
        mpesa.stk_push(PHONE, 40, "REF", "WiFi", receiver.url)
        assert time.monotonic() - started < 0.2
    assert len(daraja_sim.transactions) == 3


@pytest.mark.parametrize("rules", [
    {"push_answer": "later"}, {"push_answer": -1}, {"callback": "late"},
    {"callback_delay": float("inf")}, {"query_outage": "1"},
])
def test_wrong_rules_are_refused_and_change_nothing(daraja_sim, rules):
    with pytest.raises(ValueError):
        daraja_sim.set_phone(PHONE, **rules)
    assert daraja_sim.fault_plan.phones() == {}


def test_a_held_push_answer_ends_when_the_emulator_stops(daraja_sim, receiver):
    daraja_sim.set_phone(PHONE, push_answer=30)
    with client_for(daraja_sim, read_timeout=0.2) as mpesa:
        with pytest.raises(MpesaTimeout):
            mpesa.stk_push(PHONE, 20, "REF", "WiFi", receiver.url)
    started = time.monotonic()
    daraja_sim.stop()
    assert time.monotonic() - started < 2
