"""Purchases in the sales ledger: the STK query schedule, nothing given up without M-Pesa's
final word, a push whose answer never came or whose sender died, a refused push, the
callback URL. Real emulators over sockets throughout."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import IP, LOST, MAC, PAYER, buy, later, package, wait_for

from portal.errors import KibandaError
from portal.ledger import grants, purchases, status
from portal.models import Grant, Purchase
from portal.mpesa import MpesaClient

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)

ROOT = Path(__file__).resolve().parent.parent


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def grant_of(purchase: Purchase) -> Grant | None:
    return Grant.get_or_none(Grant.purchase == purchase.id)


def test_pending_purchase_is_queried_densely_then_backs_off_once_per_due_time(site):
    site.daraja.decision_delay = 3600  # the customer has not typed the PIN yet
    purchase = buy(site, LOST)
    start = purchase.created_at
    assert purchases.due_for_query(start + timedelta(seconds=1)) == []
    assert purchases.due_for_query(start + timedelta(seconds=2)) == [purchase.id]
    asked = site.daraja.query_requests
    schedule = []
    moment = start + timedelta(seconds=2)
    for at in (2, 4, 88, 100, 1000, 4000, 20000):
        moment = start + timedelta(seconds=at)
        purchases.poll_purchase(purchase.id, site.mpesa, moment, force=True)
        purchases.poll_purchase(purchase.id, site.mpesa, moment)  # a second poller: no query
        after = fresh(purchase)
        assert after.status == Purchase.PENDING and after.last_query_at == moment
        schedule.append(int((after.next_query_at - moment).total_seconds()))
    # Every 2 s while the customer decides, then a tenth of the age, 10 s to 5 minutes.
    assert schedule == [2, 2, 2, 10, 100, 300, 300]
    assert site.daraja.query_requests - asked == 7


def test_lost_callback_only_delays_access_by_seconds(site):
    purchase = buy(site, LOST, answered=True)
    due = purchase.created_at + timedelta(seconds=2)
    assert purchases.due_for_query(due) == [purchase.id]
    paid = purchases.poll_purchase(purchase.id, site.mpesa, due)
    assert paid.status == Purchase.PAID and paid.receipt is None
    grants.provision_if_due(grant_of(paid), site.gateway, due)
    assert site.online(grant_of(paid).username, IP)
    assert purchases.due_for_query(due + timedelta(seconds=60)) == []


def test_nothing_is_given_up_without_m_pesas_final_word(site):
    """Finding 1: with M-Pesa (or the uplink) away for minutes the purchase was expired
    and the customer told "no money was taken", although M-Pesa had it as paid."""
    purchase = buy(site, LOST, answered=True)  # paid; its callback is lost
    away = MpesaClient.from_settings({**site.app.config, "MPESA_BASE_URL": "http://127.0.0.1:9",
                                      "MPESA_CONNECT_TIMEOUT": 0.5})
    try:
        for minute in range(1, 11):  # ten minutes of failed queries
            moment = purchase.created_at + timedelta(minutes=minute)
            purchases.poll_purchase(purchase.id, away, moment)
            assert purchases.sweep_unconfirmed(moment) == 0
    finally:
        away.close()
    waiting = fresh(purchase)
    assert waiting.status == Purchase.PENDING and waiting.query_attempts == 10
    state = status.purchase_state(waiting, moment)
    assert state["status"] == "pending" and state["reason"] == "confirming"
    assert "No money was taken" not in state["message"]["en"]
    assert "still confirming" in state["message"]["en"]
    # M-Pesa is back: the next query credits it (Daraja checks the Timestamp against its
    # own clock, so this one is asked at the real time).
    paid = purchases.poll_purchase(purchase.id, site.mpesa, later(1), force=True)
    assert paid.status == Purchase.PAID and grant_of(paid) is not None


def test_after_two_days_without_an_answer_a_person_looks(site):
    site.daraja.decision_delay = 10 ** 6
    purchase = buy(site, LOST)
    assert purchases.sweep_unconfirmed(later(47 * 3600)) == 0
    assert purchases.sweep_unconfirmed(later(48 * 3600 + 60)) == 1
    assert fresh(purchase).status == Purchase.REVIEW
    state = status.purchase_state(fresh(purchase), later(48 * 3600 + 60))
    assert state["status"] == "failed" and state["reason"] == "review"


def test_push_without_an_answer_is_credited_by_its_callback(site):
    """Finding 3: the push's answer is lost (read timeout); Daraja took the push and the
    customer paid. The callback carries the purchase's reference and credits it."""
    site.daraja.push_response_delay = 1.5
    site.daraja.decision_delay = 1.0  # the customer pays after our wait has given up
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
    checkout = site.daraja.transactions[-1]["checkout_request_id"]
    assert site.daraja.transactions[-1]["callback_url"].endswith("/" + purchase.reference)
    assert wait_for(lambda: fresh(purchase).status == Purchase.PAID, timeout=8)
    assert fresh(purchase).checkout_request_id == checkout
    assert wait_for(lambda: site.online(grant_of(purchase).username, IP))


SEND_PUSH_AND_BE_KILLED = textwrap.dedent("""
    import json, sys
    from portal import create_app
    from portal.ledger import purchases
    from portal.models import Package, db
    from portal.timeutil import utcnow
    from portal.web import app_mpesa

    config = json.loads(sys.argv[1])
    app = create_app(config)
    with db.connection_context():
        package = Package.get(Package.name_en == "1 hour")
        print("pushing", flush=True)
        purchases.start_purchase(package.id, "0708374149", mac=sys.argv[2], ip=sys.argv[3],
                                 mpesa=app_mpesa(app),
                                 callback_url=purchases.callback_url(app.config), now=utcnow())
    print("never here: killed while waiting for the push's answer", flush=True)
""")


def test_sender_killed_after_the_push_left_is_credited_by_its_callback(site):
    """Finding 2: the portal is killed after the push left and before its answer was
    stored. The row was committed first, with the reference its callback carries."""
    site.daraja.push_response_delay = 30  # the answer would come long after the kill
    site.daraja.decision_delay = 0.5
    sender = subprocess.Popen(
        [sys.executable, "-c", SEND_PUSH_AND_BE_KILLED, json.dumps(site.settings), MAC, IP],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: site.daraja.transactions, timeout=20)  # the push left
    finally:
        sender.send_signal(signal.SIGKILL)
        out, err = sender.communicate(timeout=10)
    assert "never here" not in out, err
    purchase = Purchase.get()
    assert purchase.checkout_request_id is None or purchase.status == Purchase.PAID
    # The customer typed the PIN: the callback finds the purchase by its reference.
    assert wait_for(lambda: fresh(purchase).status == Purchase.PAID, timeout=8)
    assert wait_for(lambda: site.online(grant_of(purchase).username, IP))
    # The agent's sweep finds nothing left hanging.
    assert purchases.sweep_unconfirmed(later(600)) == 0


def test_a_push_whose_sender_died_is_unanswered_not_failed(site):
    site.daraja.decision_delay = 10 ** 6
    purchase = Purchase.create(phone=PAYER, package=package(), amount=10,
                               status=Purchase.PUSHING, created_at=later(0))
    assert purchases.sweep_unconfirmed(later(60)) == 0
    assert fresh(purchase).status == Purchase.PUSHING  # its answer may still come
    purchases.sweep_unconfirmed(later(130))
    assert fresh(purchase).status == Purchase.UNANSWERED
    assert status.purchase_state(fresh(purchase), later(130))["reason"] == "confirming"


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


def test_callback_url_uses_the_public_base_the_secret_and_the_purchase_reference():
    assert purchases.callback_url({"CALLBACK_BASE_URL": "https://hub.example.co.ke/relay/",
                               "PORTAL_URL": "http://10.5.50.2:8080",
                               "CALLBACK_SECRET": "s3"}) == \
        "https://hub.example.co.ke/relay/mpesa/callback/s3"
    assert purchases.callback_url({"CALLBACK_BASE_URL": "", "PORTAL_URL": "http://10.5.50.2:8080",
                               "CALLBACK_SECRET": "s3"}) == "http://10.5.50.2:8080/mpesa/callback/s3"
    assert purchases.purchase_callback_url("http://p/mpesa/callback/s3/",
                                           Purchase(reference="Ab_9")) == \
        "http://p/mpesa/callback/s3/Ab_9"
