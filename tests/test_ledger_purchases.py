"""Purchases in the sales ledger: STK query backoff, expiry, a push whose answer never
came, a refused push, the callback URL. Real emulators over sockets throughout."""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, LOST, MAC, PAYER, buy, later, package, wait_for

from portal.errors import KibandaError
from portal.ledger import grants, purchases, status
from portal.models import Grant, Purchase
from portal.mpesa import MpesaClient

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def grant_of(purchase: Purchase) -> Grant | None:
    return Grant.get_or_none(Grant.purchase == purchase.id)


def test_pending_purchase_is_queried_with_backoff_once_per_due_time(site):
    site.daraja.decision_delay = 3600  # the customer has not typed the PIN yet
    purchase = buy(site, LOST)
    start = purchase.created_at
    assert purchases.due_for_query(start + timedelta(seconds=4)) == []
    assert purchases.due_for_query(start + timedelta(seconds=5)) == [purchase.id]
    asked = site.daraja.query_requests
    schedule = []
    moment = start + timedelta(seconds=5)
    for _ in range(6):
        purchases.poll_purchase(purchase.id, site.mpesa, moment)
        purchases.poll_purchase(purchase.id, site.mpesa, moment)  # a second poller: no query
        after = fresh(purchase)
        assert after.status == Purchase.PENDING
        schedule.append(int((after.next_query_at - moment).total_seconds()))
        moment = after.next_query_at
    assert schedule == [10, 20, 40, 60, 60, 60]
    assert site.daraja.query_requests - asked == 6


def test_lost_callback_only_delays_access_by_seconds(site):
    purchase = buy(site, LOST)
    due = purchase.created_at + timedelta(seconds=5)
    assert purchases.due_for_query(due) == [purchase.id]
    paid = purchases.poll_purchase(purchase.id, site.mpesa, due)
    assert paid.status == Purchase.PAID and paid.receipt is None
    grants.provision_if_due(grant_of(paid), site.gateway, due)
    assert site.online(grant_of(paid).username, IP)
    assert purchases.due_for_query(due + timedelta(seconds=60)) == []


def test_expire_stale_queries_first_and_never_drops_a_payment(site):
    paid_late = buy(site, LOST)  # Daraja knows it was paid; only the query can tell
    site.daraja.decision_delay = 3600
    unanswered = buy(site, LOST, name="1 day", mac="AA:BB:CC:DD:EE:02", ip="10.5.50.24")
    assert purchases.expire_stale(later(60), mpesa=site.mpesa) == 0  # too young
    assert purchases.expire_stale(later(310), mpesa=site.mpesa) == 1
    assert fresh(paid_late).status == Purchase.PAID
    assert fresh(unanswered).status == Purchase.EXPIRED
    state = status.purchase_state(fresh(unanswered), later(310))
    assert state["status"] == "expired" and state["reason"] == "no_answer"


def test_expire_stale_without_a_client_waits_for_a_late_query(site):
    site.daraja.decision_delay = 3600
    purchase = buy(site, LOST)
    assert purchases.expire_stale(later(310)) == 0  # never asked: do not guess
    purchases.poll_purchase(purchase.id, site.mpesa, later(30), force=True)
    assert purchases.expire_stale(later(310)) == 0  # asked while the prompt was still open
    purchases.poll_purchase(purchase.id, site.mpesa, later(200), force=True)
    assert purchases.expire_stale(later(310)) == 1
    assert fresh(purchase).status == Purchase.EXPIRED


def test_push_without_an_answer_is_unanswered_then_goes_to_review(site):
    site.daraja.push_response_delay = 1.5
    slow = MpesaClient.from_settings({**site.app.config, "MPESA_READ_TIMEOUT": 0.3})
    try:
        purchase = purchases.start_purchase(
            package().id, "0708 374 149", mac=MAC, ip=IP, mpesa=slow,
            callback_url=purchases.callback_url(site.app.config), now=later(0))
    finally:
        slow.close()
    # Its own state (v1 wrote "push timed out" into result_desc); the customer still waits.
    assert purchase.status == Purchase.UNANSWERED and purchase.checkout_request_id is None
    assert status.purchase_state(purchase, later(1))["status"] == "pending"
    # Daraja took the push and the customer paid: the callback cannot be matched safely.
    checkout = site.daraja.transactions[-1]["checkout_request_id"]
    assert wait_for(lambda: fresh(purchase).status == Purchase.REVIEW, timeout=8)
    assert checkout in fresh(purchase).result_desc
    assert grant_of(purchase) is None and not site.online()
    state = status.purchase_state(fresh(purchase), later(2))
    assert state["status"] == "failed" and state["reason"] == "review"


def test_daraja_refusal_records_nothing(site):
    site.daraja.fail_next("busy")
    try:
        buy(site, PAYER)
    except KibandaError as exc:
        assert "busy" in exc.message_for("en").lower()
    else:
        raise AssertionError("a busy Daraja must be reported")
    assert Purchase.select().count() == 0
    # Nothing was sent, so the customer may try again at once.
    assert buy(site, PAYER).checkout_request_id


def test_callback_url_uses_the_public_base_and_the_secret():
    assert purchases.callback_url({"CALLBACK_BASE_URL": "https://hub.example.co.ke/relay/",
                               "PORTAL_URL": "http://10.5.50.2:8080",
                               "CALLBACK_SECRET": "s3"}) == \
        "https://hub.example.co.ke/relay/mpesa/callback/s3"
    assert purchases.callback_url({"CALLBACK_BASE_URL": "", "PORTAL_URL": "http://10.5.50.2:8080",
                               "CALLBACK_SECRET": "s3"}) == "http://10.5.50.2:8080/mpesa/callback/s3"
