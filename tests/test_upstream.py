"""Where sending sales to the hub stands, and where M-Pesa posts through the hub."""
from __future__ import annotations

from portal import upstream


def test_relay_urls_only_when_relay_is_on_and_a_hub_is_set():
    config = {"UPSTREAM_URL": "https://hub.example.co.ke/", "SITE_ID": "cafe-1",
              "MPESA_RELAY": True}
    assert upstream.relay_base(config) == "https://hub.example.co.ke/relay/cafe-1/mpesa"
    assert upstream.relay_base({**config, "MPESA_RELAY": False}) == ""
    assert upstream.relay_base({**config, "UPSTREAM_URL": ""}) == ""


def test_states_in_order_of_what_matters(database):
    config = {"UPSTREAM_URL": "https://hub.example.co.ke", "UPSTREAM_KEY_ID": "ab12"}
    assert upstream.sync_status({}).state == upstream.NOT_ENROLLED
    assert upstream.sync_status(config).state == upstream.OK
    upstream.write_state(**{upstream.LAST_ERROR: "hub answered 503"})
    assert upstream.sync_status(config).state == upstream.RETRYING
    upstream.write_state(**{upstream.STOPPED: "hub answered 401: unknown key"})
    status = upstream.sync_status(config)
    assert status.state == upstream.STOPPED_STATE and "unknown key" in status.error
    upstream.write_state(**{upstream.STOPPED: None, upstream.LAST_ERROR: None})
    assert upstream.sync_status(config).as_dict()["error"] is None
