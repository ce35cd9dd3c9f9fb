"""The agent: settlement by STK query, provisioning retries, expiry, isolated steps.

Everything runs against the RouterOS and Daraja emulators over real sockets; each cycle is
``agent.loop(now)`` with ``now`` passed in, so no test waits for wall-clock expiry.
"""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from helpers import buy

from portal.ledger import grants, status
from portal.models import Grant, Purchase, db
from portal.sim.routeros import RouterSim
from portal.timeutil import utcnow
from portal.venue.packages import create_package

LOST_CALLBACK = "254700009001"
PHONE_IP, PHONE_MAC = "10.5.50.23", "AA:BB:CC:00:00:01"

# Callbacks go to a port nobody listens on; the customer answers the prompt after 0.2 s.
pytestmark = [pytest.mark.site(daraja=True, packages=True),
              pytest.mark.router(password="router-pass"),
              pytest.mark.daraja(decision_delay=0.2)]


def sessions_for(router, ip: str = PHONE_IP, mac: str = PHONE_MAC) -> list[dict]:
    """The router's active hotspot sessions of one device."""
    return [row for row in router.rows("/ip/hotspot/active")
            if row.get("address") == ip and row.get("mac-address", "").upper() == mac]


def refresh(model, row_id):
    """Re-read a row from the database."""
    with db.connection_context():
        return model.get_by_id(row_id)


def test_lost_callback_settles_by_stk_query_and_device_goes_online(site, agent):
    package, router, daraja = site.package("1 hour"), site.router, site.daraja
    now = utcnow()
    purchase = buy(site, LOST_CALLBACK, now=now, answered=True, mac=PHONE_MAC, ip=PHONE_IP)
    assert daraja.transaction(purchase.checkout_request_id)["callback_attempts"] == 0

    early = agent.loop(now + timedelta(seconds=1))  # the first query is not due yet
    assert early.ok and early.done["settle"] == 0
    assert refresh(Purchase, purchase.id).status == Purchase.PENDING
    assert sessions_for(router) == []

    report = agent.loop(now + timedelta(seconds=6))
    assert report.ok, report.failed
    assert report.done["settle"] == 1
    paid = refresh(Purchase, purchase.id)
    assert paid.status == Purchase.PAID
    with db.connection_context():
        grant = Grant.get(Grant.purchase == purchase.id)
        state = status.purchase_state(paid, now + timedelta(seconds=6))
    assert grant.router_state == Grant.ON_ROUTER and grant.logged_in_at is not None
    [session] = sessions_for(router)
    assert session["user"] == grant.username
    assert state["status"] == "online"
    users = {row["name"]: row for row in router.rows("/ip/hotspot/user")}
    assert users[grant.username]["profile"] == package.profile_name


def test_router_down_at_payment_time_grant_waits_then_agent_provisions(site, agent):
    router = site.router
    now = utcnow()
    purchase = buy(site, LOST_CALLBACK, now=now, answered=True, mac=PHONE_MAC, ip=PHONE_IP)
    router.refuse_logins = True  # the router does not let the appliance in

    report = agent.loop(now + timedelta(seconds=6))
    assert report.ok, report.failed  # a router that is down is a wait, not a failure
    assert refresh(Purchase, purchase.id).status == Purchase.PAID
    with db.connection_context():
        grant = Grant.get(Grant.purchase == purchase.id)
        state = status.purchase_state(Purchase.get_by_id(purchase.id), now + timedelta(seconds=6))
    assert grant.router_state == Grant.PENDING
    assert grant.router_error and grant.router_attempts == 1
    assert state["status"] == "paid"  # "Paid, connecting you"
    assert sessions_for(router) == []
    assert grant.username not in {u["name"] for u in router.rows("/ip/hotspot/user")}

    router.refuse_logins = False
    # Before the retry time nothing is tried; at the retry time the agent pushes it.
    agent.loop(now + timedelta(seconds=7))
    assert refresh(Grant, grant.id).router_state == Grant.PENDING
    report = agent.loop(now + timedelta(seconds=6 + 5))
    assert report.ok and report.done["provision"] == 1
    grant = refresh(Grant, grant.id)
    assert grant.router_state == Grant.ON_ROUTER and grant.router_error is None
    [session] = sessions_for(router)
    assert session["user"] == grant.username


def test_router_stopped_then_restarted_on_the_same_port(site, agent):
    router = site.router
    now = utcnow()
    purchase = buy(site, LOST_CALLBACK, now=now, answered=True, mac=PHONE_MAC, ip=PHONE_IP)
    port = router.port
    router.stop()
    agent.loop(now + timedelta(seconds=6))
    with db.connection_context():
        grant = Grant.get(Grant.purchase == purchase.id)
    assert grant.router_state == Grant.PENDING and "127.0.0.1" in (grant.router_error or "")

    back = RouterSim(port=port, password="router-pass").start()
    try:
        report = agent.loop(now + timedelta(seconds=6 + 5))
        assert report.ok, report.failed
        assert refresh(Grant, grant.id).router_state == Grant.ON_ROUTER
        assert [s["user"] for s in sessions_for(back)] == [grant.username]
    finally:
        agent.close()
        back.stop()


def test_router_down_costs_one_attempt_per_cycle_not_one_per_customer(site, agent):
    """Ten paid customers wait; a dead router is tried once per cycle, then all go on."""
    package, router = site.package("1 hour"), site.router
    now = utcnow()
    with db.connection_context():
        waiting = []
        for n in range(10):
            with db.atomic():
                waiting.append(grants.create_grant(package, Grant.MANUAL, now,
                                                  created_by="test", note=f"customer {n}"))
    port = router.port
    router.stop()
    report = agent.loop(now)
    assert report.done["provision"] == 1
    with db.connection_context():
        attempts = [g.router_attempts for g in Grant.select().order_by(Grant.id)]
    assert sorted(attempts) == [0] * 9 + [1]

    back = RouterSim(port=port, password="router-pass").start()
    try:
        agent.loop(now + timedelta(minutes=5))
        with db.connection_context():
            states = {g.router_state for g in Grant.select()}
        assert states == {Grant.ON_ROUTER}
        names = {u["name"] for u in back.rows("/ip/hotspot/user")}
        assert {g.username for g in waiting} <= names
    finally:
        agent.close()
        back.stop()


def test_expired_grant_is_removed_from_router_at_its_absolute_expiry(site, agent):
    router = site.router
    now = utcnow()
    purchase = buy(site, LOST_CALLBACK, now=now, answered=True, mac=PHONE_MAC, ip=PHONE_IP)
    agent.loop(now + timedelta(seconds=6))
    with db.connection_context():
        grant = Grant.get(Grant.purchase == purchase.id)
    assert sessions_for(router) and grant.router_state == Grant.ON_ROUTER

    # One second before the hour is up the customer is still online ...
    report = agent.loop(grant.expires_at - timedelta(seconds=1))
    assert report.done["remove_expired"] == 0 and sessions_for(router)
    # ... and at expiry (the router's own clock never moved) the agent takes them off.
    report = agent.loop(grant.expires_at + timedelta(seconds=1))
    assert report.ok and report.done["remove_expired"] == 1
    assert sessions_for(router) == []
    assert grant.username not in {u["name"] for u in router.rows("/ip/hotspot/user")}
    assert refresh(Grant, grant.id).router_state == Grant.REMOVED
    with db.connection_context():
        state = status.purchase_state(Purchase.get_by_id(purchase.id),
                                     grant.expires_at + timedelta(seconds=1))
    assert state["status"] == "expired"


def test_one_failing_step_does_not_stop_the_others(site, agent, caplog):
    router = site.router
    now = utcnow()
    purchase = buy(site, LOST_CALLBACK, now=now, answered=True, mac=PHONE_MAC, ip=PHONE_IP)

    def broken(_now):
        raise RuntimeError("disk full")

    # A step that fails before every other one, as a bug or a full disk would.
    agent.steps.insert(0, ("broken", broken))
    with caplog.at_level(logging.ERROR, logger="kibanda.agent"):
        report = agent.loop(now + timedelta(seconds=6))
    assert report.failed == {"broken": "RuntimeError: disk full"}
    assert "agent step broken failed" in caplog.text
    assert report.done["settle"] == 1 and report.done["provision"] == 1
    assert refresh(Purchase, purchase.id).status == Purchase.PAID
    assert sessions_for(router)


@pytest.mark.site(daraja=True, MPESA_BASE_URL="not a url")
def test_mpesa_unusable_router_work_still_happens(site, agent):
    router = site.router
    with db.connection_context():
        package = create_package(name_en="1 hour", price=10, validity="1h")
        from portal.ledger.grants import create_grant

        grant = create_grant(package, Grant.MANUAL, utcnow(), login_ip=PHONE_IP,
                             login_mac=PHONE_MAC)
        # A pending purchase past its lifetime makes expire_stale ask M-Pesa.
        Purchase.create(phone="254708374149", package=package, amount=10,
                        checkout_request_id="ws_CO_stale", created_at=utcnow() - timedelta(hours=1),
                        next_query_at=utcnow() - timedelta(minutes=1))
    report = agent.loop(utcnow())
    assert report.done["provision"] == 1
    assert [s["user"] for s in sessions_for(router)] == [grant.username]


def test_old_login_failures_code_attempts_and_callbacks_are_pruned_in_batches(site, agent):
    from portal.models import CallbackRecord, CodeAttempt, LoginFailure

    now = utcnow()
    with db.connection_context():
        for age in (timedelta(days=2), timedelta(hours=25), timedelta(minutes=5)):
            LoginFailure.create(username="mama", address="10.5.50.9", at=now - age)
            CodeAttempt.create(device="AA:BB:CC:00:00:09", at=now - age)
        for age in (timedelta(days=200), timedelta(days=91), timedelta(days=89)):
            CallbackRecord.create(received_at=now - age, outcome="unknown", body="{}")
        # A flood of strangers' failed sign-ins, two days ago.
        LoginFailure.insert_many([{"username": f"guess{i}", "address": "10.5.50.66",
                                   "at": now - timedelta(days=2)} for i in range(450)]).execute()
    agent.prune_batch, agent.prune_batches = 100, 2  # at most 200 rows a table per cycle
    first = agent.loop(now)
    assert first.ok and first.done["prune"] == 200 + 2 + 2
    with db.connection_context():
        assert LoginFailure.select().count() == 453 - 200
    while agent.loop(now).done["prune"]:
        pass
    with db.connection_context():
        # Kept: what the limits still look at, and callbacks younger than 90 days.
        assert [r.at for r in LoginFailure.select()] == [now - timedelta(minutes=5)]
        assert [r.at for r in CodeAttempt.select()] == [now - timedelta(minutes=5)]
        assert [r.received_at for r in CallbackRecord.select()] == [now - timedelta(days=89)]


@pytest.mark.site(daraja=True, CALLBACK_RETENTION_DAYS=30)
def test_callback_retention_is_a_setting(site, agent):
    from portal.models import CallbackRecord

    now = utcnow()
    with db.connection_context():
        for days in (31, 29):
            CallbackRecord.create(received_at=now - timedelta(days=days), outcome="unknown",
                                  body="{}")
    assert agent.loop(now).done["prune"] == 1
    with db.connection_context():
        assert [r.received_at for r in CallbackRecord.select()] == [now - timedelta(days=29)]


def test_expiry_is_enforced_while_mpesa_and_the_hub_are_unreachable(make_site):
    from helpers import free_port

    from agent.worker import Agent
    from portal.models import OutboxEvent

    dead = f"http://127.0.0.1:{free_port()}"
    site = make_site(daraja=True, packages=True, MPESA_BASE_URL=dead, UPSTREAM_URL=dead,
                     MPESA_CONNECT_TIMEOUT=0.5)
    agent = Agent(site.app.config)
    try:
        now = utcnow()
        with db.connection_context():
            package = site.package("1 hour")
            grant = grants.manual_grant(package.id, "paid cash", site.gateway, now, actor="mama")
            site.router.device_logs_in(grant.username, grant.password, PHONE_IP, PHONE_MAC)
            # A customer's payment M-Pesa must be asked about: it cannot be reached.
            waiting = Purchase.create(phone="254708374149", package=package, amount=10,
                                      checkout_request_id="ws_CO_waiting", created_at=now,
                                      next_query_at=now)
        at = grant.expires_at + timedelta(seconds=1)
        report = agent.loop(at)
        assert report.done["remove_expired"] == 1
        assert sessions_for(site.router) == []
        assert grant.username not in {u["name"] for u in site.router.rows("/ip/hotspot/user")}
        with db.connection_context():
            assert Grant.get_by_id(grant.id).router_state == Grant.REMOVED
            # Nothing is decided about the payment without M-Pesa's word.
            assert Purchase.get_by_id(waiting.id).status == Purchase.PENDING
            assert OutboxEvent.select().where(OutboxEvent.kind == "grant.expired").count() == 1
    finally:
        agent.close()


def test_a_stop_during_a_cycle_lets_the_cycle_finish_then_the_agent_exits(site, agent):
    import threading

    from portal.venue import heartbeat

    stop = threading.Event()

    def sigterm_arrives(_now):
        stop.set()  # what kibanda agent's SIGTERM handler does, here in the middle of a cycle
        return 0

    agent.steps.insert(2, ("sigterm", sigterm_arrives))
    agent.run(stop, interval=3600)  # returns at once: the cycle's end, not the interval
    with db.connection_context():
        assert heartbeat.last_heartbeat() is not None  # a step after the signal still ran
    assert agent._gateway is None  # its router connection closed
