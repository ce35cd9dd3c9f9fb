"""``GET /healthz``: can this site sell right now?"""
from __future__ import annotations

import pytest
from helpers import free_port

from portal.models import Package, Purchase, db

pytestmark = pytest.mark.router(password="api-pass")


def _one_pending_purchase() -> None:
    """A site with one purchase waiting for M-Pesa (it shows in the backlog)."""
    with db.connection_context():
        package = Package.create(name_en="1 hour", price=10, validity_seconds=3600,
                                 profile_name="kb-1-hour")
        Purchase.create(phone="254712345678", package=package, amount=10)


@pytest.mark.site(MPESA_CONSUMER_KEY="key-value", MPESA_CONSUMER_SECRET="s3cret-value",
                  MPESA_PASSKEY="passkey-value")
def test_healthy_site_reports_router_mpesa_and_backlog(app):
    _one_pending_purchase()
    answer = app.test_client().get("/healthz")
    report = answer.get_json()
    assert answer.status_code == 200 and report["ok"] is True
    assert report["database"]["ok"] is True
    assert report["router"]["ok"] is True and report["router"]["version"].startswith("7.16")
    assert report["mpesa"] == {"configured": True, "missing": [], "type": "paybill",
                               "base_url": "https://sandbox.safaricom.co.ke"}
    assert report["backlog"]["pending_purchases"] == 1
    assert report["backlog"]["sms_queued"] == 0  # SMS is off here
    body = answer.get_data(as_text=True)
    assert "s3cret-value" not in body and "passkey-value" not in body


def test_unreachable_router_and_missing_mpesa_settings_are_reported(make_site):
    port = free_port()
    app = make_site(ROUTER_PORT=port, ROUTER_NAME="cafe-router", MPESA_TYPE="till").app
    answer = app.test_client().get("/healthz")
    report = answer.get_json()
    assert answer.status_code == 503 and report["ok"] is False
    assert report["router"]["ok"] is False
    assert "cafe-router" in report["router"]["error"]
    assert set(report["mpesa"]["missing"]) == {
        "MPESA_CONSUMER_KEY", "MPESA_CONSUMER_SECRET", "MPESA_PASSKEY", "MPESA_PARTYB"}


@pytest.mark.site(ROUTER_PASSWORD="wrong")
def test_router_refusing_the_api_login_is_named(app):
    report = app.test_client().get("/healthz").get_json()
    assert report["router"]["ok"] is False
    assert "invalid user name or password" in report["router"]["error"]


PHONE_ON_HOTSPOT = "10.5.50.23"


def health_from(app, address: str, browser=None):
    """GET /healthz as a client at ``address`` (or as a signed-in Browser)."""
    if browser is not None:
        return browser.get("/healthz")
    return app.test_client().get("/healthz", environ_base={"REMOTE_ADDR": address})


def assert_public(report: dict, body: str) -> None:
    """Only ok / not ok, the agent's heartbeat age and the backlog counts: nothing about
    the router or M-Pesa."""
    assert set(report) == {"ok", "database", "router", "mpesa", "agent", "backlog"}
    assert set(report["database"]) == {"ok"} and set(report["router"]) == {"ok"}
    assert set(report["agent"]) == {"ok", "heartbeat_age"}
    assert set(report["mpesa"]) == {"configured"}
    for words in ("7.16", "127.0.0.1", "8728", "RouterOS", "board", "identity", "sandbox",
                  "cafe-router", "MPESA_"):
        assert words not in body, words


@pytest.mark.site(MPESA_CONSUMER_KEY="key-value", MPESA_CONSUMER_SECRET="s3cret-value",
                  MPESA_PASSKEY="passkey-value")
def test_a_phone_on_the_hotspot_sees_only_ok_and_counts(app):
    _one_pending_purchase()
    answer = health_from(app, PHONE_ON_HOTSPOT)
    report = answer.get_json()
    assert answer.status_code == 200 and report["ok"] is True
    assert report["router"] == {"ok": True} and report["mpesa"] == {"configured": True}
    assert report["backlog"] == {"pending_purchases": 1, "grants_waiting_for_router": 0,
                                 "events_not_sent": 0, "sms_queued": 0,
                                 "upstream": "not enrolled"}
    assert_public(report, answer.get_data(as_text=True))
    # From the appliance itself (a technician's curl), everything.
    local = health_from(app, "127.0.0.1").get_json()
    assert local["router"]["version"].startswith("7.16") and local["mpesa"]["missing"] == []
    assert health_from(app, "::1").get_json()["router"]["identity"]


def test_router_errors_and_mpesa_gaps_only_for_the_owner_or_loopback(make_site):
    from helpers import TECH_NAME, TECH_PASSWORD, Browser, make_users

    app = make_site(ROUTER_PORT=free_port(), ROUTER_NAME="cafe-router", MPESA_TYPE="till").app
    make_users(app)
    answer = health_from(app, PHONE_ON_HOTSPOT)
    assert answer.status_code == 503 and answer.get_json()["router"] == {"ok": False}
    assert answer.get_json()["mpesa"] == {"configured": False}
    assert_public(answer.get_json(), answer.get_data(as_text=True))
    technician = Browser(app)
    technician.login(TECH_NAME, TECH_PASSWORD)
    assert_public(health_from(app, "", technician).get_json(),
                  health_from(app, "", technician).get_data(as_text=True))
    owner = Browser(app)
    owner.login()
    report = health_from(app, "", owner).get_json()
    assert "cafe-router" in report["router"]["error"]
    assert "MPESA_PARTYB" in report["mpesa"]["missing"]


def test_require_agent_answers_503_without_a_fresh_heartbeat(site, agent):
    from datetime import timedelta

    from portal.timeutil import utcnow

    client = site.app.test_client()
    never = client.get("/healthz?require=agent", environ_base={"REMOTE_ADDR": PHONE_ON_HOTSPOT})
    assert never.status_code == 503
    assert never.get_json()["agent"] == {"ok": False, "heartbeat_age": None}
    assert client.get("/healthz").status_code == 200  # the site itself can still sell
    # A heartbeat 16 minutes old is more than three 5-minute intervals: the agent stopped.
    agent.loop(utcnow() - timedelta(minutes=16))
    stale = client.get("/healthz?require=agent")
    assert stale.status_code == 503 and stale.get_json()["agent"]["heartbeat_age"] >= 960
    agent.loop(utcnow())
    fresh = client.get("/healthz?require=agent", environ_base={"REMOTE_ADDR": PHONE_ON_HOTSPOT})
    report = fresh.get_json()
    assert fresh.status_code == 200 and report["ok"] is True
    assert report["agent"]["ok"] is True and 0 <= report["agent"]["heartbeat_age"] < 60
    assert_public(report, fresh.get_data(as_text=True))


def test_healthz_counts_sms_waiting_to_leave(app):
    from portal.models import SmsMessage

    SmsMessage.create(key="receipt:7", kind="receipt", to="+254711000001", text="code",
                      state="sent", provider_id="ATXid_7")
    SmsMessage.create(key="reminder:7", kind="reminder", to="+254711000001", text="10 min")
    assert app.test_client().get("/healthz").get_json()["backlog"]["sms_queued"] == 1
