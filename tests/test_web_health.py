"""``GET /healthz``: can this site sell right now?"""
from __future__ import annotations

import socket

import pytest

from portal.models import Package, Purchase, db

pytestmark = pytest.mark.router(password="api-pass")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.site(MPESA_CONSUMER_KEY="key-value", MPESA_CONSUMER_SECRET="s3cret-value",
                  MPESA_PASSKEY="passkey-value")
def test_healthy_site_reports_router_mpesa_and_backlog(app):
    with db.connection_context():
        package = Package.create(name_en="1 hour", price=10, validity_seconds=3600,
                                 profile_name="kb-1-hour")
        Purchase.create(phone="254712345678", package=package, amount=10)
    answer = app.test_client().get("/healthz")
    report = answer.get_json()
    assert answer.status_code == 200 and report["ok"] is True
    assert report["database"]["ok"] is True
    assert report["router"]["ok"] is True and report["router"]["version"].startswith("7.16")
    assert report["mpesa"] == {"configured": True, "missing": [], "type": "paybill",
                               "base_url": "https://sandbox.safaricom.co.ke"}
    assert report["backlog"]["pending_purchases"] == 1
    body = answer.get_data(as_text=True)
    assert "s3cret-value" not in body and "passkey-value" not in body


def test_unreachable_router_and_missing_mpesa_settings_are_reported(make_site):
    port = _closed_port()
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
