"""Grants in the sales ledger: a crash between settlement and provisioning, and a router
that is down at payment time. Real emulators over sockets throughout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import IP, LOST, PAYER, buy, later, wait_for

from portal import create_app
from portal.ledger import grants, status
from portal.models import Grant, OutboxEvent, Purchase
from portal.sim.routeros import RouterSim
from portal.web import close_clients

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)

ROOT = Path(__file__).resolve().parent.parent

SETTLE_THEN_DIE = textwrap.dedent("""
    import json, os, sys
    from datetime import datetime
    from portal import create_app
    from portal.ledger import purchases
    from portal.models import db
    from portal.web import app_mpesa

    config, purchase_id, now = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    app = create_app(config)
    with db.connection_context():
        purchase = purchases.poll_purchase(purchase_id, app_mpesa(app),
                                       datetime.fromisoformat(now), force=True)
    print(purchase.status, flush=True)
    os._exit(0)  # the power goes right after the commit: nothing provisioned
""")


def fresh(purchase: Purchase) -> Purchase:
    return Purchase.get_by_id(purchase.id)


def grant_of(purchase: Purchase) -> Grant | None:
    return Grant.get_or_none(Grant.purchase == purchase.id)


def test_crash_between_settlement_and_provisioning(site, tmp_path):
    purchase = buy(site, LOST)  # no callback: the query settles it
    config = site.settings
    run = subprocess.run(
        [sys.executable, "-c", SETTLE_THEN_DIE, json.dumps(config), str(purchase.id),
         later(0).isoformat()],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "paid"
    paid = fresh(purchase)
    grant = grant_of(paid)
    assert paid.status == Purchase.PAID and grant.router_state == Grant.PENDING
    assert OutboxEvent.select().where(OutboxEvent.kind == "sale").count() == 1
    assert grant.username not in site.user_names() and not site.online()

    # A fresh app (the next boot) opens the waiting page: it provisions what is due.
    restarted = create_app(config)
    try:
        page = restarted.test_client().get(f"/purchases/{purchase.reference}")
        assert page.status_code == 200
        assert 'data-status="online"' in page.get_data(as_text=True)
    finally:
        close_clients(restarted)
    assert site.online(grant.username, IP)
    assert grant_of(paid).router_state == Grant.ON_ROUTER


def test_router_down_at_payment_time_then_back(site):
    port = site.router.port
    site.router.stop()
    purchase = buy(site, PAYER)
    # The callback settles, then provisioning fails and schedules a retry.
    assert wait_for(lambda: grant_of(purchase) is not None
                    and grant_of(purchase).router_error is not None)
    grant = grant_of(purchase)
    assert fresh(purchase).status == Purchase.PAID and grant.router_state == Grant.PENDING
    client = site.app.test_client()
    state = client.get(f"/purchases/{purchase.reference}.json").get_json()
    assert state["status"] == "paid"
    page = client.get(f"/purchases/{purchase.reference}").get_data(as_text=True)
    assert 'data-status="paid"' in page and "Paid. Connecting you now..." in page
    assert '<meta http-equiv="refresh" content="3">' in page

    router = RouterSim(port=port).start()
    try:
        site.router = router
        retry_at = grant_of(purchase).next_router_attempt_at
        assert grants.provision_if_due(grant_of(purchase), site.gateway,
                                      retry_at - timedelta(seconds=1)).router_state == Grant.PENDING
        grants.provision_if_due(grant_of(purchase), site.gateway, retry_at)
        assert site.online(grant.username, IP)
        assert status.purchase_state(fresh(purchase), retry_at)["status"] == "online"
    finally:
        router.stop()
