"""What the HTTP emulators share: the request target of an outgoing POST, and serving on
IPv4 or IPv6."""
from __future__ import annotations

import pytest
import requests
from helpers import sms_recipients, sms_send

from portal.sim.httpbase import request_target
from portal.sim.sms import SmsSim


@pytest.mark.parametrize("url, target", [
    ("https://portal.example/mpesa/callback/s3cret?ref=K7P2Q", "/mpesa/callback/s3cret?ref=K7P2Q"),
    ("http://h:8080/a%7Eb/%2f?x=%7E#frag", "/a%7Eb/%2f?x=%7E"),
    ("http://h?x=1", "/?x=1"),
    ("http://h", "/"),
    ("http://h#top", "/"),
])
def test_request_target_keeps_the_url_as_written(url, target):
    assert request_target(url) == target


def test_an_emulator_serves_on_ipv6():
    with SmsSim(host="::1", control_port=0) as sim:
        assert sim.url == f"http://[::1]:{sim.port}"
        assert sms_recipients(sms_send(sim))[0]["status"] == "Success"
        assert requests.get(sim.control_url + "/status", timeout=5).json()["url"] == sim.url
