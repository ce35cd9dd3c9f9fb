"""The agent: settlement by STK query, provisioning retries, expiry, isolated steps.

Everything runs against the RouterOS and Daraja emulators over real sockets; each cycle is
``agent.loop(now)`` with ``now`` passed in, so no test waits for wall-clock expiry.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from agent.worker import Agent
from portal import create_app
from portal.errors import KibandaError
from portal.ledger import grants, purchases, settlement, status
from portal.models import Grant, Package, Purchase, db
from portal.mpesa import MpesaClient
from portal.venue.packages import create_package
from portal.sim.daraja import DarajaSim
from portal.sim.daraja_rules import SANDBOX_PASSKEY
from portal.sim.routeros import RouterSim
from portal.timeutil import utcnow

LOST_CALLBACK = "254700009001"
PHONE_IP, PHONE_MAC = "10.5.50.23", "AA:BB:CC:00:00:01"


@pytest.fixture
def router():
    """The emulated MikroTik."""
    sim = RouterSim(password="router-pass").start()
    yield sim
    sim.stop()


@pytest.fixture
def daraja():
    """The emulated Daraja; the customer answers the prompt after 0.2 s."""
    sim = DarajaSim(decision_delay=0.2).start()
    yield sim
    sim.stop()


def site_settings(router, daraja) -> dict:
    """Settings pointing a site at the emulators (callbacks to a port nobody listens on)."""
    return {
        "ROUTER_HOST": "127.0.0.1", "ROUTER_PORT": router.port, "ROUTER_USER": "admin",
        "ROUTER_PASSWORD": "router-pass", "ROUTER_TIMEOUT": 2.0,
        "MPESA_BASE_URL": daraja.base_url, "MPESA_CONSUMER_KEY": daraja.consumer_key,
        "MPESA_CONSUMER_SECRET": daraja.consumer_secret, "MPESA_SHORTCODE": "174379",
        "MPESA_PASSKEY": SANDBOX_PASSKEY, "CALLBACK_BASE_URL": "http://127.0.0.1:9",
    }


@pytest.fixture
def site(instance_dir, router, daraja):
    """An app on a fresh instance wired to the emulators, one package, and an agent."""
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance_dir),
                      **site_settings(router, daraja)})
    with db.connection_context():
        package = create_package(name_en="1 hour", price=10, validity="1h", rate_limit="2M/5M")
    agent = Agent(app.config)
    yield app, agent, package
    agent.close()
    if not db.is_closed():
        db.close()


def buy(app, daraja, package: Package, phone: str, now) -> Purchase:
    """Send a real STK Push through the emulator and wait until the customer has answered."""
    client = MpesaClient.from_settings(app.config)
    try:
        with db.connection_context():
            purchase = purchases.start_purchase(package.id, phone, mac=PHONE_MAC, ip=PHONE_IP,
                                            mpesa=client, callback_url=purchases.callback_url(app.config),
                                            now=now)
    finally:
        client.close()
    assert purchase.checkout_request_id, purchase.result_desc
    txn = daraja.transaction(purchase.checkout_request_id)
    time.sleep(max(0.0, txn["decided_monotonic"] - time.monotonic()) + 0.05)
    return purchase


def sessions_for(router, ip: str = PHONE_IP, mac: str = PHONE_MAC) -> list[dict]:
    """The router's active hotspot sessions of one device."""
    return [row for row in router.rows("/ip/hotspot/active")
            if row.get("address") == ip and row.get("mac-address", "").upper() == mac]


def refresh(model, row_id):
    """Re-read a row from the database."""
    with db.connection_context():
        return model.get_by_id(row_id)


def test_lost_callback_settles_by_stk_query_and_device_goes_online(site, router, daraja):
    app, agent, package = site
    now = utcnow()
    purchase = buy(app, daraja, package, LOST_CALLBACK, now)
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


def test_router_down_at_payment_time_grant_waits_then_agent_provisions(site, router, daraja):
    app, agent, package = site
    now = utcnow()
    purchase = buy(app, daraja, package, LOST_CALLBACK, now)
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


def test_router_stopped_then_restarted_on_the_same_port(site, router, daraja):
    app, agent, package = site
    now = utcnow()
    purchase = buy(app, daraja, package, LOST_CALLBACK, now)
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


def test_router_down_costs_one_attempt_per_cycle_not_one_per_customer(site, router):
    """Ten paid customers wait; a dead router is tried once per cycle, then all go on."""
    app, agent, package = site
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


def test_expired_grant_is_removed_from_router_at_its_absolute_expiry(site, router, daraja):
    app, agent, package = site
    now = utcnow()
    purchase = buy(app, daraja, package, LOST_CALLBACK, now)
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


def test_one_failing_step_does_not_stop_the_others(site, router, daraja, caplog):
    app, agent, package = site
    now = utcnow()
    purchase = buy(app, daraja, package, LOST_CALLBACK, now)

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


def test_mpesa_unusable_router_work_still_happens(instance_dir, router, daraja):
    settings = site_settings(router, daraja)
    settings["MPESA_BASE_URL"] = "not a url"
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance_dir), **settings})
    agent = Agent(app.config)
    try:
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
    finally:
        agent.close()
    assert report.done["provision"] == 1
    assert [s["user"] for s in sessions_for(router)] == [grant.username]


def test_kibanda_agent_stops_on_sigterm(tmp_path):
    env = {**os.environ, "KIBANDA_INSTANCE": str(tmp_path / "site"),
           "KIBANDA_ROUTER_HOST": "127.0.0.1", "KIBANDA_ROUTER_PORT": "9",
           "KIBANDA_ROUTER_TIMEOUT": "0.5"}
    proc = subprocess.Popen([sys.executable, "-c", "from portal.cli import main; main()",
                             "agent", "--interval", "0.2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "agent started" in line
        time.sleep(0.5)  # a few cycles
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "agent stopped" in out
