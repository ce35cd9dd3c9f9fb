"""``POST /sms/delivery/<secret>`` (portal/web/sms.py): a delivery report changes a sent
message; a wrong secret is a 404; anything a stranger sends is never a 5xx."""
from __future__ import annotations

import pytest

from portal.models import SmsMessage


@pytest.fixture
def sent(app):
    return SmsMessage.create(key="receipt:7", kind="receipt", to="+254711000001",
                             text="code 12345678", state="sent", provider_id="ATXid_7")


def url(app, secret=None) -> str:
    return f"/sms/delivery/{secret or app.config['SMS_DELIVERY_SECRET']}"


def test_a_report_with_the_secret_changes_the_state(app, client, sent):
    answer = client.post(url(app), data={"id": "ATXid_7", "status": "Failed",
                                         "failureReason": "UserInBlackList", "retryCount": "0",
                                         "phoneNumber": "+254711000001", "networkCode": "63902"})
    assert answer.status_code == 200
    row = SmsMessage.get_by_id(sent.id)
    assert row.state == "failed" and row.failure_reason == "UserInBlackList"


def test_strangers_get_nothing_and_change_nothing(app, client, sent):
    assert client.post(url(app, "guess"), data={"id": "ATXid_7", "status": "Success"}
                       ).status_code == 404
    assert client.post("/sms/delivery/" + "x" * 200, data={}).status_code == 404
    for form in ({}, {"id": "", "status": "Success"}, {"id": "ATXid_7", "status": "Nonsense"},
                 {"id": "A" * 10_000, "status": "Success"},
                 {"id": "ATXid_7\x00", "status": "Success"}):
        assert client.post(url(app), data=form).status_code == 200
    assert client.post(url(app), data=b"\xff" * 300_000,
                       content_type="application/x-www-form-urlencoded").status_code == 413
    assert client.get(url(app)).status_code == 405
    assert SmsMessage.get_by_id(sent.id).state == "sent"


def test_the_secret_never_reaches_a_request_log():
    from portal.web.callback import redact_secret

    line = '127.0.0.1 - "POST /sms/delivery/Zx9-secret_value HTTP/1.1" 200'
    assert redact_secret(line) == '127.0.0.1 - "POST /sms/delivery/*** HTTP/1.1" 200'
    assert redact_secret("POST /mpesa/callback/abc/def") == "POST /mpesa/callback/***"

