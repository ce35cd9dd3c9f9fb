"""``kibanda enroll``: the site key (0600), registration with the hub, the settings saved."""
from __future__ import annotations

import os
import stat

from hub.ingest import make_token
from hub.models import db as hub_db
from portal import signing, upstream
from portal.config import load_settings
from portal.models import db


def token_for(slug: str = "cafe-1") -> str:
    with hub_db.connection_context():
        return make_token(slug, "Cafe One")


def test_enroll_makes_a_private_key_and_saves_the_hub(kibanda, tmp_path, live_hub):
    token = token_for()
    result = kibanda("enroll", "--hub", live_hub + "/", "--token", token)
    assert result.exit_code == 0, result.output
    assert "enrolled as cafe-1" in result.output
    key_file = tmp_path / "site" / signing.SITE_KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    settings = load_settings(tmp_path / "site")
    key_id = signing.key_id(signing.public_bytes(signing.load_key(key_file)))
    assert (settings["UPSTREAM_URL"], settings["SITE_ID"], settings["UPSTREAM_KEY_ID"]) == (
        live_hub, "cafe-1", key_id)
    # The same token again: refused, and nothing changes.
    again = kibanda("enroll", "--hub", live_hub, "--token", token)
    assert again.exit_code == 2
    assert "invalid or used token" in again.output


def test_enroll_again_keeps_the_key_and_restarts_a_stopped_queue(kibanda, tmp_path, live_hub):
    assert kibanda("enroll", "--hub", live_hub, "--token", token_for()).exit_code == 0
    key_before = (tmp_path / "site" / signing.SITE_KEY_FILE).read_bytes()
    with db.connection_context():
        upstream.write_state(**{upstream.STOPPED: "hub answered 401: unknown key"})
    assert kibanda("enroll", "--hub", live_hub, "--token", token_for()).exit_code == 0
    assert (tmp_path / "site" / signing.SITE_KEY_FILE).read_bytes() == key_before
    with db.connection_context():
        assert upstream.STOPPED not in upstream.read_state()


def test_enroll_with_a_hub_that_is_not_there(kibanda):
    result = kibanda("enroll", "--hub", "http://127.0.0.1:9", "--token", "x")
    assert result.exit_code == 1
    assert "cannot reach the hub" in result.output
    bad = kibanda("enroll", "--hub", "ftp://hub", "--token", "x")
    assert bad.exit_code == 2
