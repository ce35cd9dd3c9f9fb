"""The SMS emulator's delivery reports: the form POSTed, and the timer that sends them."""
from __future__ import annotations

import threading

import pytest
from helpers import CallbackReceiver, delivery_reports

from portal.sim.sms_reports import ReportTimer, post_form, report_form

ROW = {"id": "ATXid_1", "to": "+254733000001"}


def test_a_report_is_a_form_posted_to_the_url_as_written():
    receiver = CallbackReceiver(path="/sms/delivery/s3cret?site=A%7Eb")
    try:
        form = report_form(ROW, "Failed", "UserIsInactive", "63903", retry_count=2)
        assert post_form(receiver.url, form) == 200
        assert receiver.targets == ["/sms/delivery/s3cret?site=A%7Eb"]
        assert delivery_reports(receiver) == [{
            "id": "ATXid_1", "status": "Failed", "phoneNumber": "+254733000001",
            "networkCode": "63903", "retryCount": "2", "failureReason": "UserIsInactive"}]
    finally:
        receiver.close()


def test_no_failure_reason_unless_given():
    assert "failureReason" not in report_form(ROW, "Success", None, "63902")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url"])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(ValueError):
        post_form(url, {"id": "x"})


def test_the_timer_sends_in_order_and_drops_what_is_not_due_at_stop():
    sent, done = [], threading.Event()

    def send(message_id):
        sent.append(message_id)
        if len(sent) == 2:
            done.set()

    timer = ReportTimer(send)
    timer.start()
    timer.plan("later", 0.2)
    timer.plan("first", 0.0)
    timer.plan("never", 600)
    assert done.wait(5)
    timer.stop()
    assert sent == ["first", "later"]
