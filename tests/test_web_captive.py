"""``GET /api/captive`` (RFC 8908) for the device asking: captive until it paid, then the
time it has left; the device is the request's own address, looked up on the router."""
from __future__ import annotations

import json

import pytest
from helpers import IP, MAC, buy, wait_for

pytestmark = pytest.mark.site(live_http=True, daraja=True, packages=True)


def ask(client, address: str) -> tuple[int, str, dict]:
    response = client.get("/api/captive", environ_base={"REMOTE_ADDR": address})
    return response.status_code, response.headers["Content-Type"], json.loads(response.data)


def test_a_phone_is_captive_until_it_pays_then_sees_its_time_left(site, client):
    status, kind, body = ask(client, IP)
    assert (status, kind) == (200, "application/captive+json")
    assert body == {"captive": True, "user-portal-url": f"{site.url}/",
                    "venue-info-url": f"{site.url}/", "can-extend-session": True}
    buy(site)
    assert wait_for(lambda: site.online(ip=IP), timeout=10)
    _, _, body = ask(client, IP)
    assert body["captive"] is False
    assert 3500 < body["seconds-remaining"] <= 3600  # the 1 hour package
    # the same phone back with a new lease: the router lets it in by its MAC cookie
    site.router.device_leaves(MAC)
    site.router.device_joins("10.5.50.99", MAC)
    _, _, body = ask(client, "10.5.50.99")
    assert body["captive"] is False and body["seconds-remaining"] > 3500
    response = client.get("/api/captive", environ_base={"REMOTE_ADDR": IP})
    assert response.headers["Cache-Control"] == "private, no-store"


def test_a_stranger_and_a_router_that_cannot_be_asked_mean_captive(site, client):
    _, _, body = ask(client, "192.168.88.7")
    assert body["captive"] is True and "seconds-remaining" not in body
    site.router.refuse_logins = True
    site.router.drop_connections()
    status, _, body = ask(client, IP)
    assert status == 200 and body["captive"] is True
