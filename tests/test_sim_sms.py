"""The Africa's Talking SMS emulator over real HTTP, as any client would see it."""
from __future__ import annotations

import pytest
import requests
from helpers import SMS_HEADERS, delivery_reports, sms_recipients, wait_for
from helpers import sms_send as send

from portal.sim.sms import SmsSim

CUSTOMER = "+254711000001"


def test_a_send_is_answered_201_with_the_documented_body(sms_sim):
    answer = send(sms_sim, **{"from": "KIBANDA"})
    assert answer.status_code == 201
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    (recipient,) = body["SMSMessageData"]["Recipients"]
    assert body["SMSMessageData"]["Message"] == "Sent to 1/1 Total Cost: KES 0.8000"
    assert recipient["messageId"].startswith("ATXid_") and len(recipient["messageId"]) == 38
    assert recipient == {"cost": "KES 0.8000", "messageId": recipient["messageId"],
                         "number": CUSTOMER, "status": "Success", "statusCode": 101}
    assert sms_sim.messages == [{
        "id": recipient["messageId"], "to": CUSTOMER, "message": "Your code is K7P2Q",
        "from": "KIBANDA", "status_code": 101, "status": "Success", "cost": "KES 0.8000",
        "parts": 1, "delivery": None, "enqueue": False,
        "received_at": sms_sim.messages[0]["received_at"]}]
    assert sms_sim.requests == 1 and sms_sim.balance_kes == pytest.approx(999.2)


def test_several_recipients_each_get_their_own_entry(sms_sim):
    answer = send(sms_sim, to=f"{CUSTOMER}, +254110000002,+254711000406", enqueue="1")
    sent = sms_recipients(answer)
    assert [r["statusCode"] for r in sent] == [101, 101, 406]
    assert answer.json()["SMSMessageData"]["Message"] == "Sent to 2/3 Total Cost: KES 1.6000"
    assert sent[2] == {"cost": "0", "messageId": "None", "number": "+254711000406",
                       "status": "UserInBlacklist", "statusCode": 406}
    assert len({r["messageId"] for r in sent[:2]}) == 2
    assert all(m["enqueue"] for m in sms_sim.messages)


@pytest.mark.parametrize("code, status", [
    (401, "RiskHold"), (402, "InvalidSenderId"), (403, "InvalidPhoneNumber"),
    (404, "UnsupportedNumberType"), (405, "InsufficientBalance"), (406, "UserInBlacklist"),
    (407, "CouldNotRoute"), (409, "DoNotDisturbRejection")])
def test_a_number_ending_in_a_refusal_code_gets_it(sms_sim, code, status):
    answer = send(sms_sim, to=f"+254711000{code}")
    assert sms_recipients(answer) == [{"cost": "0", "messageId": "None",
                                   "number": f"+254711000{code}", "status": status,
                                   "statusCode": code}]
    assert answer.json()["SMSMessageData"]["Message"] == "Sent to 0/1 Total Cost: 0"
    assert sms_sim.messages[0]["status_code"] == code and sms_sim.messages[0]["id"] is None
    assert sms_sim.balance_kes == 1000.0


def test_refuse_gives_a_number_a_code_from_then_on(sms_sim):
    assert sms_recipients(send(sms_sim))[0]["statusCode"] == 101
    sms_sim.refuse(CUSTOMER, 406)
    assert sms_recipients(send(sms_sim))[0]["status"] == "UserInBlacklist"
    sms_sim.refuse(CUSTOMER, 502)
    assert sms_recipients(send(sms_sim))[0] == {"cost": "0", "messageId": "None",
                                            "number": CUSTOMER, "status": "RejectedByGateway",
                                            "statusCode": 502}
    sms_sim.refuse(CUSTOMER, None)
    assert sms_recipients(send(sms_sim))[0]["statusCode"] == 101
    with pytest.raises(ValueError):
        sms_sim.refuse(CUSTOMER, 101)


def test_an_unregistered_sender_id_is_refused_for_every_recipient(sms_sim):
    sent = sms_recipients(send(sms_sim, to=f"{CUSTOMER},+254722000002", **{"from": "OTHERCO"}))
    assert [(r["statusCode"], r["status"], r["messageId"]) for r in sent] == [
        (402, "InvalidSenderId", "None")] * 2
    sms_sim.invalid_sender_answer = "message"
    answer = send(sms_sim, **{"from": "OTHERCO"})
    assert answer.status_code == 201
    assert answer.json() == {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}
    assert sms_sim.balance_kes == 1000.0


@pytest.mark.parametrize("number", ["0711000001", "254711000001", "+25471100000",
                                    "+2547110000011", "+255711000001", "+254 711 000 001",
                                    "+254511000001", "hello"])
def test_a_number_that_is_not_a_kenyan_mobile_is_invalid(sms_sim, number):
    assert sms_recipients(send(sms_sim, to=number))[0]["status"] == "InvalidPhoneNumber"


def test_the_balance_runs_out(sms_sim):
    sms_sim.balance_kes = 1.0
    sent = sms_recipients(send(sms_sim, to=f"{CUSTOMER},+254711000002"))
    assert [r["statusCode"] for r in sent] == [101, 405]
    assert sent[1]["status"] == "InsufficientBalance"
    assert sms_sim.balance_kes == pytest.approx(0.2)


@pytest.mark.parametrize("text, parts, cost", [
    ("a" * 160, 1, "KES 0.8000"),
    ("a" * 161, 2, "KES 1.6000"),
    ("a" * 306, 2, "KES 1.6000"),
    ("a" * 307, 3, "KES 2.4000"),
    ("Asante \u2019sana", 1, "KES 0.8000"),             # a curly quote: UCS-2
    ("\u2019" + "a" * 69, 1, "KES 0.8000"),
    ("\u2019" + "a" * 70, 2, "KES 1.6000"),             # 71 UCS-2 characters
    ("{}" * 40, 1, "KES 0.8000"),                        # extension: two septets each
    ("{}" * 40 + "a", 2, "KES 1.6000"),
])
def test_cost_and_parts(sms_sim, text, parts, cost):
    (sent,) = sms_recipients(send(sms_sim, message=text))
    assert sent["cost"] == cost
    assert sms_sim.messages[0]["parts"] == parts


def test_a_wrong_api_key_or_username_is_401(sms_sim):
    for answer in (send(sms_sim, headers={"apiKey": "nope", "Accept": "application/json"}),
                   send(sms_sim, headers={"Accept": "application/json"}),
                   send(sms_sim, username="someone-else")):
        assert answer.status_code == 401
        assert answer.text == "The supplied authentication is invalid"
    assert sms_sim.messages == [] and sms_sim.requests == 3


@pytest.mark.parametrize("missing", ["username", "to", "message"])
def test_a_missing_field_is_400(sms_sim, missing):
    answer = send(sms_sim, **{missing: None})
    assert answer.status_code == 400
    assert answer.text == f"Request is missing required form field '{missing}'"
    assert sms_sim.messages == []


def test_hostile_requests_get_a_4xx(sms_sim):
    too_big = send(sms_sim, message="a" * 70000)
    assert too_big.status_code == 413
    not_utf8 = requests.post(sms_sim.url + "/version1/messaging", data=b"to=\xff\xfe",
                             headers=SMS_HEADERS, timeout=5)
    assert not_utf8.status_code == 400
    assert requests.get(sms_sim.url + "/version1/messaging", timeout=5).status_code == 405
    assert requests.post(sms_sim.url + "/version1/other", timeout=5).status_code == 404
    assert sms_sim.messages == []


@pytest.mark.parametrize("mode, status, text", [("http500", 500, "Internal Server Error"),
                                                ("http503", 503, "Service Unavailable")])
def test_fail_next_answers_a_server_error_and_sends_nothing(sms_sim, mode, status, text):
    sms_sim.fail_next(2, mode)
    for _ in range(2):
        answer = send(sms_sim)
        assert (answer.status_code, answer.text) == (status, text)
    assert sms_sim.messages == []
    assert sms_recipients(send(sms_sim))[0]["statusCode"] == 101
    assert sms_sim.requests == 3


def test_fail_next_drop_closes_the_connection_unanswered(sms_sim):
    sms_sim.fail_next(1, "drop")
    with pytest.raises(requests.ConnectionError):
        send(sms_sim)
    assert sms_sim.messages == [] and sms_sim.requests == 1
    assert sms_recipients(send(sms_sim))[0]["statusCode"] == 101


def test_fail_next_slow_outlasts_the_clients_timeout_but_sends(sms_sim):
    sms_sim.set_slow(1.0)
    sms_sim.fail_next(1, "slow")
    with pytest.raises(requests.ReadTimeout):
        send(sms_sim, timeout=0.2)
    # Africa's Talking took the message even though the client gave up waiting.
    assert wait_for(lambda: len(sms_sim.messages) == 1)
    assert sms_sim.messages[0]["status_code"] == 101
    assert sms_sim.faults() == []


def test_fail_next_refuses_unknown_modes(sms_sim):
    with pytest.raises(ValueError):
        sms_sim.fail_next(1, "fire")
    with pytest.raises(ValueError):
        sms_sim.fail_next(0, "drop")
    assert sms_sim.faults() == []


def test_a_delivery_report_is_posted_for_every_accepted_message(receiver):
    with SmsSim(delivery_report_url=receiver.url, delivery_delay=0.05) as sim:
        sent = sms_recipients(send(sim, to="+254711000001,+254733000002,+254711000406"))
        assert wait_for(lambda: len(delivery_reports(receiver)) == 2)
        assert sorted(delivery_reports(receiver), key=lambda r: r["phoneNumber"]) == [
            {"id": sent[0]["messageId"], "status": "Success", "phoneNumber": "+254711000001",
             "networkCode": "63902", "retryCount": "0"},
            {"id": sent[1]["messageId"], "status": "Success", "phoneNumber": "+254733000002",
             "networkCode": "63903", "retryCount": "0"}]
        assert wait_for(lambda: [m["delivery"] for m in sim.messages]
                        == ["Success", "Success", None])
        assert [r["http_status"] for r in sim.delivery_reports] == [200, 200]


def test_deliver_posts_a_failed_report_now(receiver):
    with SmsSim(delivery_report_url=receiver.url) as sim:
        sim.auto_deliver = False
        (sent,) = sms_recipients(send(sim))
        assert sim.deliver(sent["messageId"], "Failed", "UserInBlackList") == 200
        assert delivery_reports(receiver) == [{"id": sent["messageId"], "status": "Failed",
                                      "phoneNumber": CUSTOMER, "networkCode": "63902",
                                      "failureReason": "UserInBlackList", "retryCount": "0"}]
        assert sim.message(sent["messageId"])["delivery"] == "Failed"
        with pytest.raises(KeyError):
            sim.deliver("ATXid_unknown")
        with pytest.raises(ValueError):
            sim.deliver(sent["messageId"], "Delivered")


def test_a_report_sent_by_hand_is_not_followed_by_the_automatic_one(receiver):
    with SmsSim(delivery_report_url=receiver.url, delivery_delay=0.3) as sim:
        (sent,) = sms_recipients(send(sim))
        sim.deliver(sent["messageId"], "AbsentSubscriber")
        receiver.status = 500  # the receiver's answer is recorded, not raised
        (late,) = sms_recipients(send(sim, to="+254711000002"))
        assert wait_for(lambda: len(sim.delivery_reports) == 2)
    assert [(r["id"], r["status"], r["http_status"]) for r in sim.delivery_reports] == [
        (sent["messageId"], "AbsentSubscriber", 200), (late["messageId"], "Success", 500)]


def test_a_dead_receiver_is_recorded(receiver):
    url = receiver.url
    receiver.close()
    with SmsSim(delivery_report_url=url) as sim:
        sim.auto_deliver = False
        (sent,) = sms_recipients(send(sim))
        assert sim.deliver(sent["messageId"]) is None
    assert sim.delivery_reports[0]["error"].startswith("ConnectionRefusedError")
