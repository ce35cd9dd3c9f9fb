"""The Daraja emulator's callbacks: when each push's callback goes out, and the POSTing.

``callback_times`` turns a push's decision time and its delivery (once, lost, twice,
late) into the moments its callback is due. ``CallbackSender`` keeps those moments in
a heap and its thread POSTs each callback when due, recording the receiver's HTTP status
(or the error) on the push. It shares the emulator's lock and transactions.

The POST goes to the CallBackURL exactly as the push gave it, path and query string
byte for byte (``post_json``, on ``httpbase.post_bytes``).
"""
from __future__ import annotations

import heapq
import http.client
import json
import logging
import threading
import time

from ..timeutil import nairobi_timestamp, utcnow
from .daraja_rules import LATE, LOST, TWICE, callback_body
from .httpbase import post_bytes

log = logging.getLogger("kibanda.sim.daraja")

#: How far apart the two POSTs of a callback "sent twice" go out.
SECOND_COPY_AFTER = 0.05


def post_json(url: str, body: dict, timeout: float) -> int:
    """POST ``body`` as JSON to ``url`` unchanged (``httpbase.post_bytes``); the HTTP status."""
    status, _answer = post_bytes(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json",
                                  "Accept": "application/json"}, timeout)
    return status


def callback_times(txn: dict, callback_delay: float, late_delay: float) -> list[float]:
    """Monotonic times at which ``txn``'s callback is POSTed (none when it is lost)."""
    due = txn["decided_monotonic"] + callback_delay
    if txn["delivery"] == LOST:
        return []
    if txn["delivery"] == TWICE:
        return [due, due + SECOND_COPY_AFTER]
    if txn["delivery"] == LATE:
        return [due + late_delay]
    return [due]


class CallbackSender:
    """The callback thread: POSTs each planned callback when due, until halted."""

    def __init__(self, transactions: dict[str, dict], wake: threading.Condition,
                 timeout: float):
        self._transactions = transactions
        self._wake = wake
        #: Seconds to connect to, and then to wait for, the callback receiver.
        self.timeout = timeout
        self._schedule: list[tuple[float, int, str]] = []
        self._halted = False

    def plan(self, txn: dict, times: list[float]) -> None:
        """Queue ``txn``'s callback at each of ``times`` (the caller holds the lock)."""
        for when in times:
            heapq.heappush(self._schedule, (when, txn["serial"], txn["checkout_request_id"]))
        self._wake.notify_all()

    def resume(self) -> None:
        """Let ``run`` send again (the emulator is starting)."""
        with self._wake:
            self._halted = False

    def halt(self) -> None:
        """Make ``run`` return; callbacks not yet due stay unsent."""
        with self._wake:
            self._halted = True
            self._wake.notify_all()

    def run(self) -> None:
        """The thread's body: POST each callback when due, until ``halt()``."""
        while True:
            with self._wake:
                while not self._halted:
                    delay = (self._schedule[0][0] - time.monotonic()) if self._schedule else None
                    if delay is not None and delay <= 0:
                        break
                    self._wake.wait(delay)
                if self._halted:
                    return
                _due, _serial, checkout = heapq.heappop(self._schedule)
                txn = self._transactions[checkout]
                if txn["result_code"] == 0 and txn["transaction_date"] is None:
                    txn["transaction_date"] = nairobi_timestamp(utcnow())
                url, body = txn["callback_url"], callback_body(txn)
                txn["callback_attempts"] += 1
            self._post(checkout, url, body)

    def _post(self, checkout: str, url: str, body: dict) -> None:
        """POST one callback; a dead receiver is recorded on the transaction, not raised."""
        try:
            status = post_json(url, body, self.timeout)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            with self._wake:
                self._transactions[checkout]["callback_errors"].append(
                    f"{type(exc).__name__}: {exc}")
            log.warning("callback for %s to %s failed: %s", checkout, url, exc)
            return
        with self._wake:
            txn = self._transactions[checkout]
            txn["callback_statuses"].append(status)
            txn["callbacks_sent"] += 1
