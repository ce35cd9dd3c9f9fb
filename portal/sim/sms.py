"""An Africa's Talking SMS server the real client cannot tell from the sandbox.

``SmsSim`` serves ``POST /version1/messaging`` (headers ``apiKey`` and ``Accept:
application/json``, form ``username``, ``to``, ``message``, optional ``from`` and
``enqueue``) and answers 201 with one entry per recipient, as Africa's Talking does. The
outcome of each recipient comes from the number (one ending in 401..409 gets that
statusCode), from ``refuse(number, code)``, from the sender id, the number's shape and
the account's balance (``sms_rules``). Accepted messages get a "Success" delivery report
POSTed to ``delivery_report_url`` after ``delivery_delay`` (``sms_reports``); ``deliver``
sends any other one at once. Network faults: ``fail_next(count, mode)``. With
``control_port`` the same controls answer over HTTP (``sms_control``). The ``kibanda sim
sms`` command is in ``portal.cli.sim``.
"""
from __future__ import annotations

import http.client
import json
import logging
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from ..timeutil import utcnow
from .control import Controllable
from .httpbase import Serving, base_url
from .sms_reports import ReportTimer, post_form, report_form
from .sms_rules import (
    AUTH_FAILED, DELIVERY_STATUSES, FAILURE_REASONS, INSUFFICIENT_BALANCE, INVALID_PHONE,
    INVALID_SENDER_ID, REFUSALS, SENT, STATUS_NAMES, cost_of, cost_text, kenyan_mobile,
    missing_field, network_code, new_message_id, parts, suffix_refusal, summary,
)

log = logging.getLogger("kibanda.sim.sms")

MESSAGING_PATH = "/version1/messaging"
#: The largest form the emulator reads (bigger: 413, nothing sent).
MAX_BODY = 64 * 1024
#: The network faults ``fail_next`` queues.
FAULT_MODES = ("http500", "http503", "drop", "slow")
_FAULT_ANSWERS = {"http500": (500, "Internal Server Error"),
                  "http503": (503, "Service Unavailable")}


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive thread outlives stop().
    protocol_version = "HTTP/1.0"
    server_version = "SmsSim/1.0"
    timeout = 5

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.server.owner._serve(self)

    def do_GET(self):  # noqa: N802
        path = urlsplit(self.path).path
        if path == MESSAGING_PATH:
            self.answer_text(405, "Method Not Allowed")
        else:
            self.answer_text(404, "Not Found")

    def log_message(self, format, *args):  # noqa: A002 - signature from http.server
        log.debug("%s %s", self.address_string(), format % args)

    def answer_json(self, status: int, body: dict) -> None:
        self._answer(status, "application/json", json.dumps(body).encode())

    def answer_text(self, status: int, text: str) -> None:
        self._answer(status, "text/plain; charset=utf-8", text.encode())

    def _answer(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Refused(Exception):
    """A request answered in plain text before any recipient is looked at."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


class SmsSim(Controllable):
    """In-process Africa's Talking SMS emulator; ``start()`` it, or use it as a context
    manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, username: str = "sandbox",
                 api_key: str = "kibanda-demo-sms-key", *,
                 sender_ids: tuple[str, ...] | list[str] = ("KIBANDA",),
                 balance_kes: float = 1000.0, delivery_report_url: str | None = None,
                 delivery_delay: float = 0.2, control_port: int | None = None):
        self.host, self.port = host, port
        self.username, self.api_key = username, api_key
        self.sender_ids = tuple(sender_ids)
        self._balance = Decimal(str(balance_kes))
        #: Where delivery reports are POSTed (None: nowhere).
        self.delivery_report_url = delivery_report_url
        #: Seconds from acceptance to the automatic "Success" report.
        self.delivery_delay = delivery_delay
        #: Send a "Success" report for every accepted message (when a URL is set).
        self.auto_deliver = True
        #: How an unregistered ``from`` is answered: "recipients" (402 InvalidSenderId for
        #: every recipient) or "message" (``Message: "InvalidSenderId"`` and no Recipients,
        #: as Africa's Talking has been seen answering too); nothing is sent either way.
        self.invalid_sender_answer = "recipients"
        #: Seconds a "slow" fault holds the answer back (``set_slow``).
        self.slow_seconds = 10.0
        #: One row per recipient accepted or refused, oldest first.
        self.messages: list[dict] = []
        #: POSTs to the messaging endpoint, refused and faulted ones included.
        self.requests = 0
        #: Every delivery report POSTed: id, status, and the receiver's HTTP status or error.
        self.delivery_reports: list[dict] = []
        self._refusals: dict[str, int] = {}
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._reports = ReportTimer(self._auto_report)
        self._serving: Serving | None = None
        self._requested_control_port = control_port
        self._control = None

    # --- life ------------------------------------------------------------------------

    def start(self) -> "SmsSim":
        """Bind and serve; ``port`` and ``url`` are the bound ones afterwards."""
        self._halt.clear()
        self._serving = Serving(self.host, self.port, _Handler, self, "sms-sim-http")
        self.port = self._serving.port
        self._reports.start()
        from .sms_control import control_routes

        self._start_control(control_routes(self), "sms-sim-control")
        return self

    def stop(self) -> None:
        """Stop serving; held-back answers are dropped, reports not yet due never sent."""
        self._halt.set()
        self._stop_control()
        if self._serving is not None:
            self._serving.stop()
            self._serving = None
        self._reports.stop()

    def __enter__(self) -> "SmsSim":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (POST to ``url + MESSAGING_PATH``)."""
        return base_url(self.host, self.port)

    @property
    def balance_kes(self) -> float:
        """What is left on the account (KES)."""
        with self._lock:
            return float(self._balance)

    @balance_kes.setter
    def balance_kes(self, value: float) -> None:
        with self._lock:
            self._balance = Decimal(str(value))

    # --- controls --------------------------------------------------------------------

    def refuse(self, number: str, status_code: int | None) -> None:
        """From now on ``number`` gets ``status_code`` (one of ``REFUSALS``); None: no more."""
        if status_code is None:
            with self._lock:
                self._refusals.pop(number, None)
            return
        if status_code not in REFUSALS:
            raise ValueError(f"status_code must be one of {', '.join(map(str, REFUSALS))}")
        with self._lock:
            self._refusals[number] = status_code

    def refusals(self) -> dict[str, int]:
        """Every number ``refuse`` was called for, and its statusCode."""
        with self._lock:
            return dict(self._refusals)

    def fail_next(self, count: int = 1, mode: str = "http500") -> None:
        """The next ``count`` sends meet ``mode``: "http500", "http503" (that status and a
        plain-text body, nothing sent), "drop" (the connection closes unanswered, nothing
        sent) or "slow" (sent, but answered only after ``set_slow`` seconds)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be 1 or more")
        with self._lock:
            self._faults.extend([mode] * count)

    def faults(self) -> list[str]:
        """The faults still queued, next first."""
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def set_slow(self, seconds: float) -> None:
        """How long a "slow" fault holds the answer back."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not 0 <= seconds < float("inf"):
            raise ValueError("seconds must be 0 or more")
        self.slow_seconds = float(seconds)

    def message(self, message_id: str) -> dict:
        """The accepted message ``message_id`` (a copy); KeyError when there is none."""
        with self._lock:
            for row in self.messages:
                if row["id"] == message_id:
                    return dict(row)
        raise KeyError(message_id)

    def deliver(self, message_id: str, status: str = "Success",
                failure_reason: str | None = None) -> int | None:
        """POST a delivery report for ``message_id`` now, in this thread.

        Returns the receiver's HTTP status (None: no ``delivery_report_url``, or the POST
        got no answer; ``delivery_reports`` says why). A "Failed" report without a reason
        says DeliveryFailure.
        """
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        if failure_reason is not None and failure_reason not in FAILURE_REASONS:
            raise ValueError(f"failure_reason must be one of {', '.join(FAILURE_REASONS)}")
        if status == "Failed" and failure_reason is None:
            failure_reason = "DeliveryFailure"
        with self._lock:
            row = next((r for r in self.messages if r["id"] == message_id), None)
            if row is None:
                raise KeyError(message_id)
            row["delivery"] = status
            url = self.delivery_report_url
            form = report_form(row, status, failure_reason, network_code(row["to"]))
        if url is None:
            return None
        record = {"id": message_id, "status": status, "failure_reason": failure_reason,
                  "url": url, "http_status": None, "error": None}
        try:
            record["http_status"] = post_form(url, form)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            log.warning("delivery report for %s to %s failed: %s", message_id, url, exc)
        with self._lock:
            self.delivery_reports.append(record)
        return record["http_status"]

    def _auto_report(self, message_id: str) -> None:
        """The timer's call: the "Success" report, unless one was already sent."""
        with self._lock:
            row = next((r for r in self.messages if r["id"] == message_id), None)
            if row is None or row["delivery"] is not None or not self.auto_deliver:
                return
        self.deliver(message_id, "Success")

    # --- the messaging endpoint ------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path
        if path != MESSAGING_PATH:
            handler.answer_text(404, "Not Found")
            return
        with self._lock:
            self.requests += 1
            fault = self._faults.pop(0) if self._faults else None
        try:
            raw = self._read_body(handler)
        except _Refused as refused:
            handler.answer_text(refused.status, refused.text)
            return
        if fault in _FAULT_ANSWERS:
            handler.answer_text(*_FAULT_ANSWERS[fault])
            return
        if fault == "drop":
            handler.close_connection = True
            return
        if fault == "slow" and self._halt.wait(self.slow_seconds):
            return  # stopping: the connection closes unanswered, nothing sent
        try:
            form = self._checked_form(handler, raw)
        except _Refused as refused:
            handler.answer_text(refused.status, refused.text)
            return
        handler.answer_json(201, self._send(form))

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            raise _Refused(400, "Invalid Content-Length") from None
        if length < 0:
            raise _Refused(400, "Invalid Content-Length")
        if length > MAX_BODY:
            # Read what was sent (up to a bound) so the answer is not lost to a reset.
            left = min(length, 16 * MAX_BODY)
            while left > 0:
                chunk = handler.rfile.read(min(left, MAX_BODY))
                if not chunk:
                    break
                left -= len(chunk)
            handler.close_connection = True
            raise _Refused(413, "Request Entity Too Large")
        return handler.rfile.read(length) if length else b""

    def _checked_form(self, handler: _Handler, raw: bytes) -> dict[str, str]:
        """The form of an authorised request with every required field, or _Refused."""
        if handler.headers.get("apiKey") != self.api_key:
            raise _Refused(401, AUTH_FAILED)
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                              max_num_fields=100)
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "The request body could not be read as a form") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            form.setdefault(name, value)
        for name in ("username", "to", "message"):
            if not form.get(name, "").strip():
                raise _Refused(400, missing_field(name))
        if form["username"] != self.username:
            raise _Refused(401, AUTH_FAILED)
        return form

    def _send(self, form: dict[str, str]) -> dict:
        """Carry out one send: a row per recipient, the balance charged; the 201 body."""
        sender = form.get("from") or None
        if sender is not None and sender not in self.sender_ids \
                and self.invalid_sender_answer == "message":
            return {"SMSMessageData": {"Message": STATUS_NAMES[INVALID_SENDER_ID],
                                       "Recipients": []}}
        text = form["message"]
        part_count = parts(text)
        price = cost_of(part_count)
        numbers = [n.strip() for n in form["to"].split(",") if n.strip()]
        recipients, sent, total = [], 0, Decimal("0")
        with self._lock:
            for number in numbers:
                code = self._outcome(number, sender, price)
                accepted = code == SENT
                row = {"id": new_message_id() if accepted else None, "to": number,
                       "message": text, "from": sender, "status_code": code,
                       "status": STATUS_NAMES[code],
                       "cost": cost_text(price) if accepted else "0", "parts": part_count,
                       "delivery": None, "enqueue": form.get("enqueue") == "1",
                       "received_at": utcnow()}
                if accepted:
                    self._balance -= price
                    sent, total = sent + 1, total + price
                self.messages.append(row)
                recipients.append({"cost": row["cost"], "messageId": row["id"] or "None",
                                   "number": number, "status": row["status"],
                                   "statusCode": code})
            report = self.auto_deliver and self.delivery_report_url is not None
        if report:
            for row in recipients:
                if row["statusCode"] == SENT:
                    self._reports.plan(row["messageId"], self.delivery_delay)
        return {"SMSMessageData": {"Message": summary(sent, len(numbers), total),
                                   "Recipients": recipients}}

    def _outcome(self, number: str, sender: str | None, price: Decimal) -> int:
        """One recipient's statusCode (the caller holds the lock)."""
        if sender is not None and sender not in self.sender_ids:
            return INVALID_SENDER_ID
        if kenyan_mobile(number) is None:
            return INVALID_PHONE
        refused = self._refusals.get(number) or suffix_refusal(number)
        if refused is not None:
            return refused
        if self._balance < price:
            return INSUFFICIENT_BALANCE
        return SENT
