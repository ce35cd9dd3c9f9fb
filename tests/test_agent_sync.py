"""Sending the outbox to the hub and settling what it relays (``agent/sync.py``).

The hub is the real one (``hub.create_app``) served on a loopback port, on SQLite and on
PostgreSQL; the site is the test site with its agent; time is passed to ``agent.loop``.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from helpers import buy, enroll_site, outbox_sales

from agent import sync
from hub.models import Event, HubSite
from hub.models import db as hub_db
from portal import upstream
from portal.models import OutboxEvent, Purchase, db
from portal.timeutil import utcnow

DAY_START = datetime(2026, 3, 11, 3, 0)  # 06:00 in Nairobi


def hub_events(slug: str = "cafe-1") -> list[Event]:
    with hub_db.connection_context():
        return list(Event.select().join(HubSite).where(HubSite.slug == slug))


def unsent() -> int:
    return OutboxEvent.select().where(OutboxEvent.sent_at.is_null()).count()


def drain(agent, now: datetime, cycles: int = 50) -> datetime:
    """Run the sync step until nothing is unsent (time moves a minute per cycle)."""
    for _ in range(cycles):
        if not unsent():
            return now
        agent.send_upstream(now)
        now += timedelta(minutes=1)
    return now


def test_a_day_offline_with_10000_sales_drains_nothing_lost_nothing_twice(site, agent, live_hub):
    enroll_site(site.app.config, live_hub)
    hub_url = site.app.config["UPSTREAM_URL"]
    with db.connection_context():
        outbox_sales(10_000, DAY_START, spacing_seconds=8.6)  # a sale every 8.6 s for a day
        site.app.config["UPSTREAM_URL"] = "http://127.0.0.1:9"  # the uplink is down
        now = DAY_START
        for _ in range(5):
            assert agent.send_upstream(now) == 0
            now += timedelta(hours=2)
        assert unsent() == 10_000
        status = upstream.sync_status(site.app.config)
        assert status.state == upstream.RETRYING and status.unsent == 10_000

        site.app.config["UPSTREAM_URL"] = hub_url  # the link is back
        # The hub stored one batch but its answer was lost: that batch goes again.
        agent.uploader._send_batch(sync.unsent_rows(500))
        now = drain(agent, now + timedelta(hours=1))
        assert unsent() == 0
        assert upstream.sync_status(site.app.config).state == upstream.OK
        last_ok = upstream.read_state()[upstream.LAST_OK_AT]
        assert upstream.parse_iso(last_ok) is not None
        seqs = [row.seq for row in OutboxEvent.select(OutboxEvent.seq)]
    events = hub_events()
    assert len(events) == 10_000
    assert sorted(event.seq for event in events) == sorted(seqs)
    assert sum(event.amount for event in events) == 200_000


def test_batches_are_at_most_500_in_sequence_order(site, agent, live_hub, hub_app):
    enroll_site(site.app.config, live_hub)
    batches = []
    send = agent.uploader._send_batch

    def spy(rows):
        batches.append([row[0] for row in rows])
        return send(rows)

    agent.uploader._send_batch = spy
    with db.connection_context():
        outbox_sales(1_201, DAY_START)
        agent.send_upstream(DAY_START)
    assert [len(batch) for batch in batches] == [500, 500, 201]
    flat = [seq for batch in batches for seq in batch]
    assert flat == sorted(flat)


def test_only_acknowledged_ids_are_marked_sent(site, agent, live_hub, monkeypatch):
    enroll_site(site.app.config, live_hub)
    with db.connection_context():
        outbox_sales(3, DAY_START)
        rows = sync.unsent_rows(10)
        # The hub acknowledges two of three (as if it held only those).
        marked = agent.uploader._mark_sent(rows, {rows[0][1], rows[2][1]}, DAY_START)
        assert marked == 2
        assert [row[0] for row in sync.unsent_rows(10)] == [rows[1][0]]


def test_backoff_grows_is_capped_and_survives_a_restart(site, live_hub):
    from agent.worker import Agent

    enroll_site(site.app.config, live_hub)
    site.app.config["UPSTREAM_URL"] = "http://127.0.0.1:9"
    now = DAY_START
    delays = []
    with db.connection_context():
        outbox_sales(2, DAY_START)
        for _ in range(12):
            worker = Agent(site.app.config)  # a fresh agent each time: the state is in the db
            worker.send_upstream(now)
            retry_at = upstream.parse_iso(upstream.read_state()[upstream.RETRY_AT])
            delays.append((retry_at - now).total_seconds())
            # Before the retry time nothing is tried.
            attempts = OutboxEvent.select().first().attempts
            worker.send_upstream(retry_at - timedelta(seconds=1))
            assert OutboxEvent.select().first().attempts == attempts
            now = retry_at
            worker.close()
        assert unsent() == 2
    assert 1 <= delays[0] <= 2
    assert delays[3] > delays[1] > delays[0]
    assert max(delays) <= 300 and delays[-1] >= 150


def test_a_refusal_stops_the_queue_and_the_owner_sees_it(site, agent, live_hub, hub_app):
    from helpers import Browser, make_users, visible_text

    from helpers import HubSiteKey

    enroll_site(site.app.config, live_hub)
    # Another box enrolled as cafe-1 since: the hub no longer knows this site's key.
    HubSiteKey(hub_app.test_client(), slug="cafe-1")
    make_users(site.app)
    with db.connection_context():
        outbox_sales(3, DAY_START)
        assert agent.send_upstream(DAY_START) == 0
        status = upstream.sync_status(site.app.config)
        assert status.state == upstream.STOPPED_STATE
        assert "401" in status.error and "unknown key" in status.error
        # Stopped: no more attempts, hours later too; nothing deleted.
        attempts = OutboxEvent.select().first().attempts
        agent.send_upstream(DAY_START + timedelta(hours=5))
        assert OutboxEvent.select().first().attempts == attempts
        assert OutboxEvent.select().count() == 3
    health = site.app.test_client().get("/healthz").get_json()
    assert health["backlog"]["events_not_sent"] == 3
    assert health["backlog"]["upstream"] == "stopped"
    assert "unknown key" in health["sync"]["error"]
    browser = Browser(site.app)
    browser.login()
    text = visible_text(browser.text("/admin/dashboard"))
    assert "Sales are not reaching the operator" in text
    assert "unknown key" in text
    assert hub_events() == []


def test_a_hub_that_is_down_shows_as_retrying_on_the_owner_page(site, agent):
    from helpers import Browser, make_users, visible_text

    site.app.config.update(UPSTREAM_URL="http://127.0.0.1:9", SITE_ID="cafe-1",
                           UPSTREAM_KEY_ID="abc")
    from pathlib import Path

    from portal import signing

    signing.load_or_create_key(Path(site.app.config["INSTANCE_PATH"]) / signing.SITE_KEY_FILE)
    make_users(site.app)
    with db.connection_context():
        outbox_sales(4, DAY_START)
        agent.send_upstream(utcnow())
    browser = Browser(site.app)
    browser.login()
    text = visible_text(browser.text("/admin/dashboard"))
    assert "4 sales waiting to reach the operator" in text
    assert "trying again" in text.lower()


def test_the_agent_prune_never_deletes_unsent_events(site, agent):
    with db.connection_context():
        outbox_sales(5, DAY_START - timedelta(days=400))
        agent.prune(utcnow())
        assert unsent() == 5


@pytest.mark.site(daraja=True, packages=True)
@pytest.mark.daraja(decision_delay=0.0)
def test_a_relayed_callback_settles_a_site_with_no_public_address(site, agent, live_hub):
    from helpers import wait_for

    from hub.models import RelayMessage
    from portal.ledger import purchases

    enroll_site(site.app.config, live_hub)
    site.app.config["MPESA_RELAY"] = True
    url = purchases.callback_url(site.app.config)
    assert url.startswith(f"{live_hub}/relay/cafe-1/mpesa/callback/")
    with db.connection_context():
        purchase = buy(site)
    # The Daraja emulator posts the callback to the hub, which holds it.
    assert wait_for(lambda: _held(RelayMessage), timeout=10)
    with db.connection_context():
        assert Purchase.get_by_id(purchase.id).status == Purchase.PENDING
        assert agent.fetch_relayed(utcnow()) == 1
        settled = Purchase.get_by_id(purchase.id)
        assert settled.status == Purchase.PAID and settled.receipt
        assert site.online()
        from portal.models import CallbackRecord

        assert [r.outcome for r in CallbackRecord.select()] == ["settled"]
        # Acknowledged: the hub does not deliver it again.
        assert agent.fetch_relayed(utcnow() + timedelta(seconds=2)) == 0


@pytest.mark.site(daraja=True, packages=True)
def test_a_relayed_c2b_confirmation_settles_a_site_with_no_public_address(site, agent, live_hub):
    """The prompt never arrives; the customer pays the PayBill from the M-Pesa menu with
    the page's account code. Safaricom can only reach the hub: the site's agent fetches
    the confirmation and the waiting phone goes online."""
    from helpers import PAYER, wait_for

    from hub.models import RelayMessage
    from portal.ledger import c2b

    enroll_site(site.app.config, live_hub)
    site.app.config["MPESA_RELAY"] = True
    confirmation, validation = c2b.c2b_urls(site.app.config)
    assert confirmation.startswith(f"{live_hub}/relay/cafe-1/mpesa/c2b/confirmation/")
    site.mpesa.register_c2b_urls(confirmation, validation)
    site.daraja.set_phone(PAYER, callback="lost", query_outage=True)
    with db.connection_context():
        purchase = buy(site)
    site.daraja.pay_from_menu(PAYER, purchase.amount, account=purchase.account_code)
    assert wait_for(lambda: _held(RelayMessage), timeout=10)
    with db.connection_context():
        assert Purchase.get_by_id(purchase.id).status != Purchase.PAID
        assert agent.fetch_relayed(utcnow()) == 1
        paid = Purchase.get_by_id(purchase.id)
        assert paid.status == Purchase.PAID and paid.receipt
        assert site.online()
        sales = [e.data for e in OutboxEvent.select().where(OutboxEvent.kind == "sale")]
        assert [(s["source"], s["receipt"]) for s in sales] == [("c2b", paid.receipt)]
        # Acknowledged: the hub does not deliver it again, and nothing is credited twice.
        assert agent.fetch_relayed(utcnow() + timedelta(seconds=2)) == 0
    assert _held(RelayMessage) == 0


def _held(model) -> int:
    with hub_db.connection_context():
        return model.select().where(model.acknowledged_at.is_null()).count()


def test_relayed_kinds_without_a_handler_stay_on_the_hub(site, agent, live_hub, hub_app):
    from hub.models import RelayMessage

    enroll_site(site.app.config, live_hub)
    site.app.config["MPESA_RELAY"] = True
    hub = hub_app.test_client()
    hub.post("/relay/cafe-1/mpesa/c2b/confirmation", json={"TransID": "RKT1"})
    agent.relay.handlers.pop("c2b_confirmation", None)
    with db.connection_context():
        assert agent.fetch_relayed(utcnow()) == 0
    assert _held(RelayMessage) == 1


def test_the_agent_killed_mid_drain_and_restarted_sends_each_event_once(
        kibanda, runner, tmp_path, hub_database_url):
    """Real processes: ``kibanda hub`` (gunicorn) and ``kibanda agent``, SIGKILLed."""
    import os
    import signal
    import subprocess

    from helpers import KIBANDA, free_port, hub_event_count, start_hub, stop_process, wait_for

    from portal.cli import main

    hub, hub_url = start_hub(tmp_path / "hub", hub_database_url, workers=2)
    agent_proc = None
    try:
        token = runner.invoke(main, ["hub", "--hub-instance", str(tmp_path / "hub"), "token",
                                     "--site", "cafe-1"],
                              env={"KIBANDA_HUB_DATABASE_URL": hub_database_url})
        assert token.exit_code == 0, token.output
        enrolled = kibanda("enroll", "--hub", hub_url, "--token",
                           token.stdout.strip().splitlines()[0])
        assert enrolled.exit_code == 0, enrolled.output
        total = 8_000
        with db.connection_context():
            outbox_sales(total, DAY_START, spacing_seconds=10.8)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIBANDA_")}
        env.update(KIBANDA_ROUTER_HOST="127.0.0.1", KIBANDA_ROUTER_PORT=str(free_port()),
                   KIBANDA_ROUTER_TIMEOUT="0.5")
        command = [*KIBANDA, "--instance", str(tmp_path / "site"), "agent", "--interval", "0.2"]

        def start_agent():
            return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)

        agent_proc = start_agent()
        assert wait_for(lambda: hub_event_count(hub_url, "cafe-1") > 0, timeout=60, step=0.02)
        agent_proc.send_signal(signal.SIGKILL)
        agent_proc.communicate(timeout=10)
        held_at_kill = hub_event_count(hub_url, "cafe-1")
        assert 0 < held_at_kill < total
        agent_proc = start_agent()
        with db.connection_context():
            assert wait_for(lambda: unsent() == 0, timeout=90, step=0.2)
            # The sales, and the heartbeats the agent itself wrote meanwhile.
            written = OutboxEvent.select().count()
            assert written - total == OutboxEvent.select().where(
                OutboxEvent.kind == "heartbeat").count()
        assert hub_event_count(hub_url, "cafe-1") == written
    finally:
        if agent_proc is not None:
            agent_errors = stop_process(agent_proc)
        hub_errors = stop_process(hub)
    assert "Traceback" not in hub_errors, hub_errors
    assert "sync stopped" not in agent_errors, agent_errors
    events = hub_events_via_db(hub_database_url)
    assert len(events) == written and len(set(events)) == written


def hub_events_via_db(url: str) -> list[int]:
    """Every stored event's seq, read straight from the hub's database."""
    from hub.models import init_db

    init_db(url)
    with hub_db.connection_context():
        return [row.seq for row in Event.select(Event.seq)]


def test_a_hub_that_is_down_does_not_stop_the_relay_for_good(site, agent, live_hub, hub_app):
    from hub.models import RelayMessage

    enroll_site(site.app.config, live_hub)
    site.app.config.update(MPESA_RELAY=True, UPSTREAM_URL="http://127.0.0.1:9")
    now = utcnow()
    with db.connection_context():
        assert agent.fetch_relayed(now) == 0  # refused connection: waits, does not raise
        report = agent.loop(now + timedelta(milliseconds=10))
        assert "relay" not in report.failed and report.done["relay"] == 0
        site.app.config["UPSTREAM_URL"] = live_hub
        hub_app.test_client().post("/relay/cafe-1/mpesa/callback/wrong-secret/ref",
                                   json={"Body": {}})
        # Within a minute of the failure it asks again, and what it fetched is settled
        # (here: refused for its wrong secret, as the site's own URL would) and acknowledged.
        assert agent.fetch_relayed(now + timedelta(seconds=61)) == 1
    assert _held(RelayMessage) == 0


def test_a_relayed_body_a_handler_refuses_is_acknowledged_not_fetched_forever(
        site, agent, live_hub, hub_app):
    from hub.models import RelayMessage

    enroll_site(site.app.config, live_hub)
    site.app.config["MPESA_RELAY"] = True
    seen = []

    def refuse(_agent, message, _now):
        seen.append(message["body"])
        raise ValueError("not a C2B confirmation")

    agent.relay.handlers["c2b_confirmation"] = refuse
    hub_app.test_client().post("/relay/cafe-1/mpesa/c2b/confirmation", data=b"{not json")
    with db.connection_context():
        assert agent.fetch_relayed(utcnow()) == 1
        assert agent.fetch_relayed(utcnow() + timedelta(seconds=2)) == 0
    assert seen == ["{not json"]
    assert _held(RelayMessage) == 0


def test_an_sms_delivery_report_relayed_by_the_hub_updates_the_message(site, agent, live_hub,
                                                                       hub_app):
    from hub.models import RelayMessage
    from portal.ledger import sms
    from portal.models import SmsMessage

    enroll_site(site.app.config, live_hub)
    site.app.config["MPESA_RELAY"] = True
    secret = site.app.config["SMS_DELIVERY_SECRET"]
    url = sms.delivery_url(site.app.config)
    assert url == f"{live_hub}/relay/cafe-1/sms/delivery/{secret}"
    with db.connection_context():
        row = SmsMessage.create(key="receipt:1", kind="receipt", to="+254711000001",
                                text="code 12345678", state="sent", provider_id="ATXid_1")
    hub = hub_app.test_client()
    path = url[len(live_hub):]
    assert hub.post(path, data={"id": "ATXid_1", "status": "Success"}).status_code == 200
    # Forged: a wrong secret is held by the hub too, but changes nothing at the site.
    hub.post("/relay/cafe-1/sms/delivery/forged", data={"id": "ATXid_1", "status": "Failed"})
    with db.connection_context():
        assert agent.fetch_relayed(utcnow()) == 2
        assert SmsMessage.get_by_id(row.id).state == "delivered"
    assert _held(RelayMessage) == 0
