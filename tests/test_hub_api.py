"""The hub's API on both engines: enrollment, signed ingest stored once, refusals, the
relay and the monitoring JSON (the wire contract in docs/operators.md)."""
from __future__ import annotations

import json
import time

import pytest
from helpers import HubSiteKey, sale_event

from hub.models import Event, HubSite, RelayMessage
from hub.models import db as hub_db
from portal import signing


@pytest.fixture
def hub_client(hub_app):
    """A test client of the hub."""
    return hub_app.test_client()


@pytest.fixture
def cafe(hub_client):
    """Site cafe-1, enrolled with a fresh key."""
    return HubSiteKey(hub_client)


def stored(slug: str = "cafe-1") -> list[Event]:
    with hub_db.connection_context():
        return list(Event.select().join(HubSite).where(HubSite.slug == slug).order_by(Event.seq))


def test_a_batch_is_stored_once_and_every_id_acknowledged(cafe):
    events = [sale_event(seq) for seq in range(1, 4)]
    first = cafe.send(events)
    assert first.status_code == 200
    assert first.get_json() == {"acknowledged": [e["id"] for e in events]}
    # The site never heard the answer and sends it again (re-signed): held, not doubled.
    fourth = sale_event(4)
    again = cafe.send(events + [fourth])
    assert again.get_json()["acknowledged"] == [e["id"] for e in events + [fourth]]
    rows = stored()
    assert [row.seq for row in rows] == [1, 2, 3, 4]
    assert sum(row.amount for row in rows) == 200


def test_enrollment_tokens_are_one_time(hub_client, cafe):
    key = signing.new_key()
    used = hub_client.post("/v1/enroll", json={"token": cafe.token,
                                               "public_key": signing.public_key_b64(key)})
    assert used.status_code == 401
    assert used.get_json() == {"error": "invalid or used token"}
    unknown = hub_client.post("/v1/enroll", json={"token": "made-up",
                                                  "public_key": signing.public_key_b64(key)})
    assert unknown.status_code == 401
    bad_key = hub_client.post("/v1/enroll", json={"token": "x", "public_key": "AAAA"})
    assert bad_key.status_code == 400


def test_an_expired_token_is_refused(hub_client):
    from datetime import timedelta

    from hub.ingest import make_token
    from portal.timeutil import utcnow

    with hub_db.connection_context():
        token = make_token("old-site", now=utcnow() - timedelta(days=8))
    answer = hub_client.post("/v1/enroll", json={
        "token": token, "public_key": signing.public_key_b64(signing.new_key())})
    assert answer.status_code == 401


def test_re_enrolling_replaces_the_key(hub_client, cafe):
    from hub.ingest import make_token

    with hub_db.connection_context():
        token = make_token("cafe-1")
    new = signing.new_key()
    answer = hub_client.post("/v1/enroll", json={"token": token,
                                                 "public_key": signing.public_key_b64(new)})
    assert answer.status_code == 201
    assert cafe.send([sale_event(1)]).get_json() == {"error": "unknown key"}
    cafe.key, cafe.key_id = new, answer.get_json()["key_id"]
    assert cafe.send([sale_event(1)]).status_code == 200


def test_a_tampered_body_is_refused_and_nothing_stored(cafe, hub_client):
    path = "/v1/sites/cafe-1/events"
    body = json.dumps({"events": [sale_event(1, amount=50)]}).encode()
    headers = cafe.headers("POST", path, body)
    forged = body.replace(b'"amount": 50', b'"amount": 5000')
    answer = hub_client.post(path, data=forged, headers=headers,
                             content_type="application/json")
    assert answer.status_code == 401
    assert answer.get_json() == {"error": "bad signature"}
    assert stored() == []


def test_a_replayed_request_is_refused(cafe, hub_client):
    path = "/v1/sites/cafe-1/events"
    body = json.dumps({"events": [sale_event(1)]}).encode()
    headers = cafe.headers("POST", path, body)
    assert hub_client.post(path, data=body, headers=headers).status_code == 200
    replay = hub_client.post(path, data=body, headers=headers)
    assert replay.status_code == 409
    assert replay.get_json() == {"error": "replayed"}


def test_a_signature_for_another_endpoint_is_worthless(cafe, hub_client):
    body = json.dumps({"ids": [1]}).encode()
    headers = cafe.headers("POST", "/v1/sites/cafe-1/relay/ack", body)
    answer = hub_client.post("/v1/sites/cafe-1/events", data=body, headers=headers)
    assert answer.status_code == 401


def test_a_wrong_site_key_is_refused(hub_client, cafe):
    other = HubSiteKey(hub_client, slug="shop-2", name="Shop Two")
    # shop-2's key signing for cafe-1: an unknown key id for that site.
    path = "/v1/sites/cafe-1/events"
    body = json.dumps({"events": [sale_event(1)]}).encode()
    headers = other.headers("POST", path, body)
    headers[signing.HEADER_SITE] = "cafe-1"
    answer = hub_client.post(path, data=body, headers=headers)
    assert answer.status_code == 401 and answer.get_json() == {"error": "unknown key"}
    # The right key id with another key's signature: a bad signature.
    headers[signing.HEADER_KEY] = cafe.key_id
    answer = hub_client.post(path, data=body, headers=headers)
    assert answer.get_json() == {"error": "bad signature"}
    assert stored() == []


def test_a_stale_timestamp_is_refused(cafe):
    answer = cafe.send([sale_event(1)], now=time.time() - 301)
    assert answer.status_code == 401 and answer.get_json() == {"error": "stale timestamp"}
    assert cafe.send([sale_event(1)], now=time.time() + 250).status_code == 200


@pytest.mark.parametrize("events, words", [
    ([], "events must be a list"),
    ([{"id": "x"}], "seq"),
    ([{**sale_event(1), "at": "yesterday"}], "at must be ISO 8601"),
    ([{**sale_event(1), "data": {"amount": "50", "source": "mpesa"}}], "amount"),
    ([sale_event(n) for n in range(501)], "1 to 500"),
])
def test_malformed_batches_are_refused_whole(cafe, events, words):
    answer = cafe.send(events)
    assert answer.status_code == 400
    assert words in answer.get_json()["error"]
    assert stored() == []


def test_not_json_and_too_large_bodies(cafe):
    assert cafe.post("/v1/sites/cafe-1/events", b"\xff\xfe").status_code == 400
    huge = b'{"events": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    assert cafe.post("/v1/sites/cafe-1/events", huge).status_code == 413


def test_heartbeats_show_in_the_monitoring_json(cafe, hub_client):
    beat = {"id": "hb-1", "seq": 9, "kind": "heartbeat", "at": "2026-03-11T08:00:00Z",
            "data": {"router_ok": True, "active_sessions": 4, "backlog": 12,
                     "last_sync_at": None, "agent_version": "0.1.0"}}
    older = {**beat, "id": "hb-0", "seq": 8, "at": "2026-03-11T07:00:00Z",
             "data": {**beat["data"], "backlog": 99, "router_ok": False}}
    assert cafe.send([beat, older]).status_code == 200
    assert hub_client.get("/v1/sites").status_code == 401
    assert hub_client.get("/v1/sites", headers={"Authorization": "Bearer nope"}).status_code == 401
    sites = hub_client.get("/v1/sites", headers={
        "Authorization": "Bearer op-token-for-tests"}).get_json()["sites"]
    assert sites[0]["site"] == "cafe-1" and sites[0]["name"] == "Cafe One"
    assert sites[0]["backlog"] == 12 and sites[0]["router_ok"] is True
    assert sites[0]["events"] == 2 and sites[0]["last_seen_at"].endswith("Z")


def test_money_today_and_this_month_in_nairobi_days(hub_app, cafe):
    from datetime import datetime

    from hub.reports import site_overview

    # Nairobi is UTC+3: 21:30 UTC on the 10th is 00:30 on the 11th there.
    cafe.send([sale_event(1, 50, "2026-03-10T21:30:00Z"), sale_event(2, 20, "2026-03-10T20:59:00Z"),
               sale_event(3, 250, "2026-02-28T20:00:00Z"), sale_event(4, 800, "2026-03-01T08:00:00Z")])
    with hub_db.connection_context():
        row = site_overview(datetime(2026, 3, 11, 9, 0))[0]
    assert (row.money_today, row.money_month) == (50, 870)


def test_no_operator_token_configured_is_503(hub_app, hub_client):
    hub_app.config["HUB_OPERATOR_TOKEN"] = ""
    assert hub_client.get("/v1/sites", headers={"Authorization": "Bearer "}).status_code == 503


def test_relayed_callbacks_wait_for_the_site_until_acknowledged(cafe, hub_client):
    callback = {"Body": {"stkCallback": {"ResultCode": 0}}}
    answer = hub_client.post("/relay/cafe-1/mpesa/callback/s3cret/ref123", json=callback)
    assert answer.get_json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    hub_client.post("/relay/cafe-1/mpesa/c2b/confirmation", json={"TransID": "X1"})
    validation = hub_client.post("/relay/cafe-1/mpesa/c2b/validation", json={})
    assert validation.get_json() == {"ResultCode": "0", "ResultDesc": "Accepted"}
    assert hub_client.post("/relay/nobody/mpesa/callback/a/b", json={}).status_code == 404

    start = time.time()
    messages = cafe.get("/v1/sites/cafe-1/relay?after=0&wait=0", now=start).get_json()["messages"]
    assert [(m["kind"], m["path"]) for m in messages] == [
        ("stk_callback", "s3cret/ref123"), ("c2b_confirmation", "")]
    assert json.loads(messages[0]["body"]) == callback
    # Not acknowledged: delivered again (to a fresh signature: a copy would be a replay).
    assert cafe.get("/v1/sites/cafe-1/relay?after=0&wait=0", now=start).status_code == 409
    again = cafe.get("/v1/sites/cafe-1/relay?after=0&wait=0",
                     now=start + 1).get_json()["messages"]
    assert [m["id"] for m in again] == [m["id"] for m in messages]
    ack = cafe.post("/v1/sites/cafe-1/relay/ack", {"ids": [messages[0]["id"], 10**9]})
    assert ack.get_json() == {"acknowledged": [messages[0]["id"]]}
    left = cafe.get("/v1/sites/cafe-1/relay?after=0&wait=0",
                    now=start + 2).get_json()["messages"]
    assert [m["kind"] for m in left] == ["c2b_confirmation"]
    # Another site sees nothing of cafe-1's and cannot acknowledge it.
    shop = HubSiteKey(hub_client, slug="shop-2")
    assert shop.get("/v1/sites/shop-2/relay?after=0&wait=0").get_json() == {"messages": []}
    assert shop.post("/v1/sites/shop-2/relay/ack", {"ids": [left[0]["id"]]}).get_json() == {
        "acknowledged": []}
    assert cafe.get("/v1/sites/cafe-1/relay?wait=99").status_code == 400


def test_a_relay_body_over_64_kb_is_refused(cafe, hub_client):
    answer = hub_client.post("/relay/cafe-1/mpesa/callback/s/r", data=b"x" * (64 * 1024 + 1))
    assert answer.status_code == 413
    with hub_db.connection_context():
        assert RelayMessage.select().count() == 0


def test_healthz_for_the_load_balancer(hub_client):
    answer = hub_client.get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"ok": True,
                                                               "database": {"ok": True}}
