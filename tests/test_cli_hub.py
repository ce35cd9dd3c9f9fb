"""``kibanda hub``: tokens from the command line, and hub processes sharing one PostgreSQL."""
from __future__ import annotations

import json
import os
import stat
import threading
import time
import uuid

import requests
from helpers import sale_event, start_hub, stop_process

from portal import signing


def run_hub_cli(runner, tmp_path, database_url: str, *args):
    from portal.cli import main

    return runner.invoke(main, ["hub", "--hub-instance", str(tmp_path / "hub"), *args],
                         env={"KIBANDA_HUB_DATABASE_URL": database_url})


def test_token_prints_a_one_time_token(runner, tmp_path, hub_database_url):
    from hub.models import EnrollmentToken, HubSite, db

    result = run_hub_cli(runner, tmp_path, hub_database_url, "token", "--site", "cafe-1",
                         "--name", "Cafe One")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert len(token) >= 30
    with db.connection_context():
        assert HubSite.get(HubSite.slug == "cafe-1").name == "Cafe One"
        # Only a hash of the token is kept.
        assert EnrollmentToken.select().where(EnrollmentToken.token_hash == token).count() == 0
    refused = run_hub_cli(runner, tmp_path, hub_database_url, "token", "--site", "Cafe One!")
    assert refused.exit_code == 2
    assert "a-z, 0-9" in refused.output
    db.obj.close()
    if hub_database_url.startswith("sqlite"):
        path = hub_database_url[len("sqlite:///"):]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _enroll(hub_url: str, slug: str) -> object:
    """A token (straight from the hub's database), then POST /v1/enroll: the site's key."""
    from hub.ingest import make_token
    from hub.models import db

    with db.connection_context():
        token = make_token(slug)
    key = signing.new_key()
    answer = requests.post(f"{hub_url}/v1/enroll", timeout=10, json={
        "token": token, "public_key": signing.public_key_b64(key)})
    assert answer.status_code == 201, answer.text
    return key


def test_two_hub_processes_on_one_postgresql_store_each_event_once(tmp_path, postgres_server):
    from helpers import fresh_postgres_database

    from hub.models import db, init_db

    url, drop = fresh_postgres_database(postgres_server)
    first, first_url = start_hub(tmp_path / "hub-a", url, workers=2)
    second, second_url = start_hub(tmp_path / "hub-b", url, workers=2)
    statuses: list[int] = []
    try:
        slugs = [f"site-{n}" for n in range(4)]
        init_db(url)
        keys = {slug: _enroll(first_url, slug) for slug in slugs}
        batches = {slug: [[sale_event(b * 100 + n, amount=10,
                                      event_id=str(uuid.uuid4())) for n in range(100)]
                          for b in range(5)] for slug in slugs}

        def send(slug: str, hub_url: str, skew: int):
            for batch in batches[slug]:
                path = f"/v1/sites/{slug}/events"
                body = json.dumps({"events": batch}).encode()
                # Each copy is signed on its own (another second): the contract's re-signing.
                headers = signing.sign_headers(keys[slug], slug, "POST", path, body,
                                               time.time() - skew)
                try:
                    answer = requests.post(hub_url + path, data=body, headers=headers,
                                           timeout=30)
                except requests.RequestException as exc:
                    statuses.append(repr(exc))
                else:
                    statuses.append(answer.status_code if answer.status_code == 200
                                    else answer.text)

        # Every batch reaches both hubs at once (a site retrying after a lost answer, through
        # a load balancer that sent the retry to the other machine).
        threads = [threading.Thread(target=send, args=(slug, hub, skew))
                   for slug in slugs for hub, skew in ((first_url, 0), (second_url, 2))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert [s for s in statuses if s != 200] == []
        assert len(statuses) == len(slugs) * 5 * 2
        sites = requests.get(f"{second_url}/v1/sites", timeout=10,
                             headers={"Authorization": "Bearer op-token"}).json()["sites"]
        assert {site["site"]: site["events"] for site in sites} == {slug: 500 for slug in slugs}
    finally:
        errors = stop_process(first) + stop_process(second)
        if db.obj is not None:
            db.obj.close()
        drop()
    assert "Traceback" not in errors, errors
