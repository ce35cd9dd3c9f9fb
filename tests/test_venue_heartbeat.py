"""The agent's heartbeat: written every interval, locally and as an outbox event in one
transaction, with what the agent sees (router, sessions, backlog, last sync)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import IP, MAC

from portal.models import OutboxEvent, Setting, db
from portal.timeutil import utcnow
from portal.venue import heartbeat

pytestmark = pytest.mark.site(packages=True, AGENT_HEARTBEAT_SECONDS=120)


def beats() -> list[dict]:
    with db.connection_context():
        return [e.data for e in OutboxEvent.select().where(OutboxEvent.kind == "heartbeat")
                .order_by(OutboxEvent.seq)]


def test_a_heartbeat_every_interval_with_what_the_agent_sees(site, agent):
    [code] = site.make_vouchers("1 hour", 1)
    site.router.device_logs_in(code, code, IP, MAC)
    now = utcnow()
    with db.connection_context():
        # The sync engine's mark of its last acknowledged batch (it writes, we only read).
        Setting.create(key=heartbeat.LAST_SYNC_KEY, value="2026-12-01T20:15:00Z")
        unsent = OutboxEvent.select().where(OutboxEvent.sent_at.is_null()).count()
    assert agent.loop(now).done["heartbeat"] == 1
    # Sent upstream exactly as kept locally.
    [beat] = beats()
    assert beat == {"router_ok": True, "active_sessions": 1,
                    # + voucher.used and sale: this cycle saw the voucher used
                    "backlog": unsent + 2,
                    "last_sync_at": "2026-12-01T20:15:00Z",
                    "agent_version": heartbeat.agent_version()}
    with db.connection_context():
        local = heartbeat.last_heartbeat()
    assert local.pop("at") == now.replace(microsecond=0)
    assert local == beat

    assert agent.loop(now + timedelta(seconds=119)).done["heartbeat"] == 0
    assert agent.loop(now + timedelta(seconds=120)).done["heartbeat"] == 1
    assert len(beats()) == 2


def test_a_router_that_is_down_is_in_the_heartbeat_not_a_missing_one(site, agent):
    site.router.refuse_logins = True
    report = agent.loop(utcnow())
    assert report.ok and report.done["heartbeat"] == 1
    [beat] = beats()
    assert (beat["router_ok"], beat["active_sessions"], beat["last_sync_at"]) == (False, 0, None)


def test_the_agent_is_stale_after_three_intervals_without_a_heartbeat(site, agent):
    now = utcnow()
    with db.connection_context():
        assert heartbeat.agent_state(now, 120).stale  # never ran
    agent.loop(now)
    with db.connection_context():
        assert heartbeat.agent_state(now + timedelta(seconds=360), 120) == heartbeat.AgentState(
            now.replace(microsecond=0), 360, False)
        assert heartbeat.agent_state(now + timedelta(seconds=361), 120).stale
