"""The SMS emulator's delivery reports: a form POST to the account's delivery-report URL.

``post_form`` sends one report (``id``, ``status``, ``phoneNumber``, ``networkCode``,
``failureReason`` when Failed, ``retryCount``) and returns the receiver's HTTP status.
``ReportTimer`` is the thread that sends the automatic "Success" reports when they are
due; ``SmsSim.deliver`` sends one at once in the caller's thread.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable
from urllib.parse import urlencode

from .httpbase import post_bytes

#: Seconds to connect to, and then to wait for, the delivery-report receiver.
REPORT_TIMEOUT = 5.0


def report_form(message: dict, status: str, failure_reason: str | None,
                network: str, retry_count: int = 0) -> dict:
    """The form fields of one delivery report for ``message`` (an ``SmsSim.messages`` row)."""
    form = {"id": message["id"], "status": status, "phoneNumber": message["to"],
            "networkCode": network, "retryCount": str(retry_count)}
    if failure_reason is not None:
        form["failureReason"] = failure_reason
    return form


def post_form(url: str, form: dict, timeout: float = REPORT_TIMEOUT) -> int:
    """POST ``form`` url-encoded to ``url`` as written; the receiver's HTTP status.

    Raises OSError (no connection, timeout), http.client.HTTPException (a broken answer)
    or ValueError (not an http(s) URL).
    """
    status, _answer = post_bytes(url, urlencode(form).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded"}, timeout)
    return status


class ReportTimer:
    """One thread that calls ``send(message_id)`` for each planned report when it is due."""

    def __init__(self, send: Callable[[str], None]):
        self._send = send
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._halted = True
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._wake:
            self._halted = False
        self._thread = threading.Thread(target=self._run, name="sms-sim-reports", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; reports not yet due are never sent."""
        with self._wake:
            self._halted = True
            self._due.clear()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=REPORT_TIMEOUT + 1)
            self._thread = None

    def plan(self, message_id: str, delay: float) -> None:
        """Send the report of ``message_id`` ``delay`` seconds from now."""
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), message_id))
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._halted:
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    if wait is not None and wait <= 0:
                        break
                    self._wake.wait(wait)
                if self._halted:
                    return
                _when, _order, message_id = heapq.heappop(self._due)
            self._send(message_id)
