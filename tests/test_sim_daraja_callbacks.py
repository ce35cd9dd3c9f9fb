"""The Daraja emulator's callbacks: POSTed to the CallBackURL exactly as the push gave it."""
from __future__ import annotations

import pytest

from portal.mpesa import MpesaClient

pytestmark = pytest.mark.daraja(decision_delay=0.05)


@pytest.fixture
def mpesa(daraja_sim):
    sim = daraja_sim
    with MpesaClient(sim.base_url, sim.consumer_key, sim.consumer_secret, sim.shortcode,
                     sim.passkey, read_timeout=3.0, connect_timeout=1.0) as client:
        yield client


@pytest.mark.parametrize("target", [
    # an opaque purchase reference in the query string, with escapes an HTTP library
    # would "normalise" (%7e -> ~, %2f -> %2F) and characters that stay as they are
    "/mpesa/callback/s3cret?ref=K7P2Q-%7e%2fx+y=z&via=stk",
    # the reference as a path segment instead
    "/mpesa/callback/s3cret/K7P2Q%7E9b",
    # an empty query still ends in "?"
    "/mpesa/callback/s3cret?",
])
def test_the_callback_goes_to_the_callback_url_exactly_as_given(daraja_sim, mpesa, receiver,
                                                                target):
    pushed = mpesa.stk_push("0708374149", 20, "KIBANDA", "WiFi 1h", receiver.base + target)
    (callback,) = receiver.wait(pushed.checkout_request_id)
    assert callback.success and callback.amount == 20
    assert receiver.targets == [target]
    txn = daraja_sim.wait_for_callbacks(pushed.checkout_request_id)
    assert txn["callback_url"] == receiver.base + target
    assert txn["callback_statuses"] == [200]


def test_a_fragment_stays_on_the_sender_side(daraja_sim, mpesa, receiver):
    pushed = mpesa.stk_push("0708374149", 21, "KIBANDA", "WiFi", receiver.url + "?ref=A1#top")
    assert receiver.wait(pushed.checkout_request_id)
    assert receiver.targets == ["/mpesa/callback/s3cret?ref=A1"]


def test_the_receivers_status_is_recorded(daraja_sim, mpesa, receiver):
    receiver.status = 503
    pushed = mpesa.stk_push("0708374149", 22, "KIBANDA", "WiFi", receiver.url)
    txn = daraja_sim.wait_for_callbacks(pushed.checkout_request_id)
    assert txn["callback_statuses"] == [503] and txn["callback_errors"] == []
