"""The SMS emulator's HTTP control interface: requests to the control port, and what a
client sending SMS and a delivery-report receiver then meet."""
from __future__ import annotations

import pytest
import requests
from helpers import delivery_reports, sms_recipients, sms_send, wait_for

pytestmark = pytest.mark.sms(control_port=0)
CUSTOMER = "+254711000001"


def control(sim, method: str, path: str, body: dict | None = None, expect: int = 200):
    """One control request; checks the status and returns the JSON answer."""
    answer = requests.request(method, sim.control_url + path, json=body, timeout=10)
    assert answer.status_code == expect, answer.text
    return answer.json()


def test_status_names_the_emulator(sms_sim):
    status = control(sms_sim, "GET", "/status")
    assert status["emulator"] == "sms" and status["url"] == sms_sim.url
    assert status["control_port"] == sms_sim.control_port != sms_sim.port
    assert status["sender_ids"] == ["KIBANDA"] and status["balance_kes"] == 1000.0


def test_no_control_port_unless_asked():
    from portal.sim.sms import SmsSim

    with SmsSim() as sim:
        assert sim.control_url is None and sim.control_port is None


def test_refuse_over_http(sms_sim):
    assert control(sms_sim, "POST", "/refuse", {"number": CUSTOMER, "status_code": 406}) == {
        "refusals": {CUSTOMER: 406}}
    assert sms_recipients(sms_send(sms_sim))[0]["status"] == "UserInBlacklist"
    control(sms_sim, "POST", "/refuse", {"number": CUSTOMER, "status_code": None})
    assert control(sms_sim, "GET", "/refusals") == {"refusals": {}}
    assert sms_recipients(sms_send(sms_sim))[0]["status"] == "Success"
    refused = control(sms_sim, "POST", "/refuse", {"number": CUSTOMER, "status_code": 101},
                      expect=400)
    assert refused["error"].startswith("status_code must be one of 401")


def test_fail_next_over_http(sms_sim):
    queued = control(sms_sim, "POST", "/fail-next", {"count": 2, "mode": "http503"})
    assert queued == {"faults": ["http503", "http503"], "slow_seconds": 10.0}
    assert sms_send(sms_sim).status_code == 503
    assert control(sms_sim, "DELETE", "/faults") == {"faults": [], "slow_seconds": 10.0}
    assert sms_send(sms_sim).status_code == 201
    control(sms_sim, "POST", "/fail-next", {"mode": "slow", "seconds": 0.5})
    assert sms_sim.slow_seconds == 0.5 and sms_sim.faults() == ["slow"]
    assert control(sms_sim, "POST", "/fail-next", {"mode": "fire"}, expect=400)["error"] == (
        "mode must be one of http500, http503, drop, slow")
    assert control(sms_sim, "POST", "/fail-next", {"mode": "drop", "count": 0},
                   expect=400)["error"] == "count must be 1 or more"
    control(sms_sim, "POST", "/fail-next", {"mode": "drop", "cuont": 2}, expect=400)
    assert sms_sim.faults() == ["slow"]


def test_messages_and_deliver_over_http(sms_sim, receiver):
    control(sms_sim, "POST", "/settings", {"delivery_report_url": receiver.url,
                                           "auto_deliver": False})
    (sent,) = sms_recipients(sms_send(sms_sim))
    sms_send(sms_sim, to="+254711000406")
    rows = control(sms_sim, "GET", "/messages")["messages"]
    assert [(r["id"], r["to"], r["status_code"], r["cost"]) for r in rows] == [
        (sent["messageId"], CUSTOMER, 101, "KES 0.8000"), (None, "+254711000406", 406, "0")]
    assert control(sms_sim, "GET", "/messages?to=%2B254711000406")["messages"][0]["status"] \
        == "UserInBlacklist"
    delivered = control(sms_sim, "POST", "/deliver", {"message_id": sent["messageId"],
                                                      "status": "Failed",
                                                      "failure_reason": "UserIsInactive"})
    assert delivered["http_status"] == 200 and delivered["message"]["delivery"] == "Failed"
    assert delivery_reports(receiver)[0]["failureReason"] == "UserIsInactive"
    assert control(sms_sim, "GET", "/delivery-reports")["delivery_reports"][0]["status"] \
        == "Failed"
    assert control(sms_sim, "POST", "/deliver", {"message_id": "ATXid_0"}, expect=404) == {
        "error": "no accepted message ATXid_0"}
    control(sms_sim, "POST", "/deliver", {"message_id": sent["messageId"],
                                          "status": "Read"}, expect=400)


def test_settings_change_together_or_not_at_all(sms_sim, receiver):
    before = control(sms_sim, "GET", "/settings")
    refused = control(sms_sim, "POST", "/settings", {"balance_kes": 5, "delivery_delay": -1},
                      expect=400)
    assert refused == {"error": "delivery_delay must be 0 or more"}
    assert control(sms_sim, "GET", "/settings") == before
    control(sms_sim, "POST", "/settings", {"delivery_report_url": "ftp://x"}, expect=400)
    changed = control(sms_sim, "POST", "/settings", {
        "balance_kes": 0.5, "delivery_report_url": receiver.url, "delivery_delay": 0,
        "invalid_sender_answer": "message"})
    assert changed["balance_kes"] == 0.5 and changed["invalid_sender_answer"] == "message"
    assert sms_recipients(sms_send(sms_sim))[0]["status"] == "InsufficientBalance"
    control(sms_sim, "POST", "/settings", {"balance_kes": 10})
    (sent,) = sms_recipients(sms_send(sms_sim))
    assert wait_for(lambda: len(delivery_reports(receiver)) == 1)
    assert delivery_reports(receiver)[0]["id"] == sent["messageId"]
    assert sms_send(sms_sim, **{"from": "NOPE"}).json()["SMSMessageData"] == {
        "Message": "InvalidSenderId", "Recipients": []}
