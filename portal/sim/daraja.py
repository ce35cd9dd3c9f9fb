"""A Daraja (M-Pesa) HTTP server the real client cannot tell from the sandbox.

``DarajaSim`` serves OAuth, STK Push and STK Query over HTTP and decides each push's
outcome from the test phone number (the field rules, test numbers and payload shapes are
in ``daraja_rules``); a ``daraja_callbacks.CallbackSender`` thread POSTs the callbacks.
Fault injection (``daraja_faults.FaultPlan``): ``fail_next``, ``expire_tokens``, push
answers held back or never sent, per-phone callbacks lost, doubled or delayed and STK Query
outages. With ``control_port`` the same controls answer over HTTP (``daraja_control``).
The ``kibanda sim mpesa`` command is in ``portal.cli.sim``.
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from ..timeutil import utcnow
from .control import ControlServer, Controllable
from .daraja_c2b import C2BBook, check_status_query, post_and_read, status_result
from .daraja_callbacks import CallbackSender, callback_times
from .daraja_control import control_routes
from .daraja_faults import FaultPlan
from .daraja_rules import (
    DUPLICATE_WINDOW, FAULTS, SANDBOX_PASSKEY, SANDBOX_SHORTCODE, Refusal, bad_request,
    check_credentials, check_push, decide, error_body, new_checkout_id, new_receipt,
    new_request_id, outcome_of, query_body,
)
from .httpbase import EmulatorServer, base_url

log = logging.getLogger("kibanda.sim.daraja")
PUSH_ACCEPTED = "Success. Request accepted for processing"


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive thread outlives stop().
    protocol_version = "HTTP/1.0"
    server_version = "DarajaSim/1.0"
    timeout = 5

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.owner._dispatch(self, "GET")

    def do_POST(self):  # noqa: N802
        self.server.owner._dispatch(self, "POST")

    def log_message(self, format, *args):  # noqa: A002 - signature from http.server
        log.debug("%s %s", self.address_string(), format % args)

    def answer(self, status: int, body: dict) -> None:
        """Send ``body`` as JSON with ``status``."""
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class DarajaSim(Controllable):
    """In-process Daraja emulator; ``start()`` it, or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 consumer_key: str = "kibanda-demo-key",
                 consumer_secret: str = "kibanda-demo-secret",
                 shortcode: str = SANDBOX_SHORTCODE, passkey: str = SANDBOX_PASSKEY,
                 decision_delay: float = 2.0, callback_delay: float = 0.0,
                 token_ttl: int = 3600, late_callback_delay: float = 30.0, *,
                 push_response_delay: float = 0.0, oauth_response_delay: float = 0.0,
                 till_number: str | None = None,
                 timestamp_window: float | None = 600.0,
                 invalidate_previous_token: bool = False, callback_timeout: float = 5.0,
                 control_port: int | None = None, sandbox: bool = False):
        self.host, self.port = host, port
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.shortcode, self.passkey = str(shortcode), passkey
        self.decision_delay = decision_delay
        self.callback_delay = callback_delay
        self.late_callback_delay = late_callback_delay
        self.token_ttl = token_ttl
        #: Seconds the push answer is held back (the push is already taken): read timeouts.
        self.push_response_delay = push_response_delay
        #: Seconds the OAuth answer is held back (lets tests overlap token requests).
        self.oauth_response_delay = oauth_response_delay
        #: The Till a Buy Goods push must name in PartyB (None: any number but the store's).
        self.till_number = till_number
        #: How far the Timestamp may be from Nairobi's clock (None: not checked).
        self.timestamp_window = timestamp_window
        #: Daraja is said to invalidate the previous token on every OAuth request.
        self.invalidate_previous_token = invalidate_previous_token
        self.token_requests = 0
        self.push_requests = 0
        self.query_requests = 0
        self.pull_requests = 0
        #: Seconds before a Transaction Status result is POSTed; the results sent so far.
        self.status_delay = 0.05
        self.status_results: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._tokens: dict[str, float] = {}
        #: What goes wrong next, or for a phone (``fail_next``, ``set_phone`` ...).
        self.fault_plan = FaultPlan()
        self._transactions: dict[str, dict] = {}
        self._callbacks = CallbackSender(self._transactions, self._wake, callback_timeout)
        #: Payments from the menu (C2B), their URLs and Pull Transactions (daraja_c2b).
        self.c2b = C2BBook(self.shortcode, till_number, sandbox=sandbox,
                           timeout=callback_timeout)
        self._serial = 0
        self._server: EmulatorServer | None = None
        self._threads: list[threading.Thread] = []
        # Set by stop(): push answers held back stop waiting and close their connection.
        self._halt = threading.Event()
        #: The HTTP control interface's port: None is off, 0 any free port until start().
        self._requested_control_port = control_port
        self._control: ControlServer | None = None

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> "DarajaSim":
        """Listen and serve in background threads; returns self."""
        self._server = EmulatorServer((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._halt.clear()
        self._callbacks.resume()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                             name="daraja-sim-http", daemon=True),
            threading.Thread(target=self._callbacks.run, name="daraja-sim-callbacks",
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._start_control(control_routes(self), "daraja-sim-control")
        return self

    def stop(self) -> None:
        """Stop serving, drop callbacks not yet due, and join every thread."""
        self._stop_control()
        self._halt.set()
        self._callbacks.halt()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []
        self._server = None

    def __enter__(self) -> "DarajaSim":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Where the emulator listens, e.g. ``http://127.0.0.1:54321``."""
        return base_url(self.host, self.port)

    @property
    def callback_timeout(self) -> float:
        """Seconds to connect to, and then to wait for, the callback receiver."""
        return self._callbacks.timeout

    @callback_timeout.setter
    def callback_timeout(self, seconds: float) -> None:
        self._callbacks.timeout = seconds

    # -- test controls -----------------------------------------------------------------

    @property
    def transactions(self) -> list[dict]:
        """Every push taken, oldest first (copies).

        Keys: checkout_request_id, merchant_request_id, phone, amount, result_code, outcome
        ("success" or another word of ``daraja_rules.OUTCOMES``), decided, receipt, callbacks_sent,
        callback_errors, callback_statuses, timestamp, callback_url, transaction_type ...
        """
        clock = time.monotonic()
        with self._lock:
            rows = sorted(self._transactions.values(), key=lambda txn: txn["serial"])
            return [{**txn, "decided": clock >= txn["decided_monotonic"],
                     "callback_errors": list(txn["callback_errors"]),
                     "callback_statuses": list(txn["callback_statuses"])} for txn in rows]

    def transaction(self, checkout_request_id: str) -> dict:
        """One push by its CheckoutRequestID (a copy)."""
        for txn in self.transactions:
            if txn["checkout_request_id"] == checkout_request_id:
                return txn
        raise KeyError(checkout_request_id)

    def expire_tokens(self) -> None:
        """Make every issued token invalid: the next call answers 404.001.03."""
        with self._lock:
            self._tokens.clear()

    def fail_next(self, kind: str, n: int = 1, on: str = "push") -> None:
        """Answer the next ``n`` requests to ``on`` (push, query, oauth) with fault ``kind``."""
        self.fault_plan.fail_next(kind, n, on)

    def delay_next_push(self, seconds: float, n: int = 1) -> None:
        """Take the next ``n`` pushes but answer each only ``seconds`` later (read timeouts)."""
        self.fault_plan.delay_next_push(seconds, n)

    def set_phone(self, phone: str, **rules) -> dict:
        """Rules for every later push to ``phone``: ``push_answer``, ``callback``,
        ``callback_delay``, ``query_outage`` (see ``FaultPlan.set_phone``)."""
        return self.fault_plan.set_phone(phone, **rules)

    def wait_for_callbacks(self, checkout_request_id: str, count: int = 1,
                           timeout: float = 5.0) -> dict:
        """Block until ``count`` callback POSTs for a push have finished; return the push."""
        deadline = time.monotonic() + timeout
        while True:
            txn = self.transaction(checkout_request_id)
            finished = txn["callbacks_sent"] + len(txn["callback_errors"])
            if finished >= count or time.monotonic() >= deadline:
                return txn
            time.sleep(0.02)

    def pay_from_menu(self, phone: str, amount: int, account: str | None = None, *,
                      till: bool = False, confirmation: str = "sent") -> dict:
        """A test phone pays the PayBill (with ``account``) or the Till from its M-Pesa
        menu; the confirmation is POSTed to the registered URL unless it is "lost"."""
        return self.c2b.pay(phone, amount, account=account, till=till,
                            confirmation=confirmation)

    def stk_successes(self) -> list[dict]:
        """Pushes the customer has paid (Pull Transactions lists them too)."""
        return [txn for txn in self.transactions if txn["decided"] and txn["result_code"] == 0]

    # -- HTTP ------------------------------------------------------------------------

    def _dispatch(self, handler: _Handler, method: str) -> None:
        path = urlsplit(handler.path)
        route = {("GET", "/oauth/v1/generate"): self._oauth,
                 ("POST", "/mpesa/stkpush/v1/processrequest"): self._push,
                 ("POST", "/mpesa/stkpushquery/v1/query"): self._query,
                 ("POST", "/mpesa/c2b/v1/registerurl"): self._c2b_register,
                 ("POST", "/mpesa/c2b/v2/registerurl"): self._c2b_register,
                 ("POST", "/pulltransactions/v1/register"): self._pull_register,
                 ("POST", "/pulltransactions/v1/query"): self._pull_query,
                 ("POST", "/mpesa/transactionstatus/v1/query"): self._status,
                 }.get((method, path.path))
        if route is None:
            known = path.path in ("/oauth/v1/generate", "/mpesa/stkpush/v1/processrequest",
                                  "/mpesa/stkpushquery/v1/query", "/mpesa/c2b/v1/registerurl",
                                  "/mpesa/c2b/v2/registerurl", "/pulltransactions/v1/register",
                                  "/pulltransactions/v1/query",
                                  "/mpesa/transactionstatus/v1/query")
            status, code, text = ((405, "405.001", "Method Not Allowed") if known
                                  else (404, "404.001.01", "Resource not found"))
            handler.answer(status, error_body(code, text))
            return
        try:
            route(handler, path.query)
        except Refusal as refusal:
            handler.answer(refusal.status, error_body(refusal.code, refusal.message))
        except _Drop:
            handler.close_connection = True

    def _oauth(self, handler: _Handler, query: str) -> None:
        with self._lock:
            self.token_requests += 1
        if self._inject_fault("oauth"):
            raise _Drop()
        if parse_qs(query).get("grant_type") != ["client_credentials"]:
            raise Refusal(400, "400.008.02", "Invalid grant type passed")
        auth = handler.headers.get("Authorization", "")
        scheme, _, encoded = auth.partition(" ")
        if scheme != "Basic" or not encoded:
            raise Refusal(400, "400.008.01", "Invalid Authentication passed")
        try:
            key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refusal(400, "400.008.01", "Invalid Authentication passed") from exc
        if (key, secret) != (self.consumer_key, self.consumer_secret):
            raise Refusal(400, "400.008.01", "Invalid Authentication passed")
        token = base64.b64encode(new_request_id().encode()).decode().rstrip("=")[:28]
        with self._lock:
            if self.invalidate_previous_token:
                self._tokens.clear()
            self._tokens[token] = time.monotonic() + self.token_ttl
        lifetime = self.token_ttl - 1 if self.token_ttl > 60 else self.token_ttl
        if self.oauth_response_delay:
            time.sleep(self.oauth_response_delay)
        # Older gateways send expires_in as a string; clients must int() it.
        handler.answer(200, {"access_token": token, "expires_in": str(lifetime)})

    def _authorised_json(self, handler: _Handler, on: str) -> tuple[dict, bool]:
        """Check the bearer token, faults and content type; return the body, drop flag."""
        auth = handler.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self._lock:
            valid = self._tokens.get(token, 0.0) > time.monotonic()
        if not valid:
            raise Refusal(404, "404.001.03", "Invalid Access Token")
        drop = self._inject_fault(on)
        content_type = handler.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise bad_request("BusinessShortCode")  # what Daraja says to a form post
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request("JSON") from exc
        if not isinstance(body, dict):
            raise bad_request("JSON")
        return body, drop

    def _answerable_json(self, handler: _Handler, on: str) -> dict:
        """The checked body of a request that gets an answer (a "drop" fault: none)."""
        body, drop = self._authorised_json(handler, on)
        if drop:
            raise _Drop()
        return body

    def _inject_fault(self, on: str) -> bool:
        """Raise the next queued fault for ``on``; True when the answer must be dropped."""
        kind = self.fault_plan.take_fault(on)
        if kind is None or kind == "drop":
            return kind == "drop"
        status, code, message = FAULTS[kind]
        raise Refusal(status, code, message)

    def _push(self, handler: _Handler, _query: str) -> None:
        with self._lock:
            self.push_requests += 1
        body, drop = self._authorised_json(handler, "push")
        now = utcnow()
        check_credentials(body, self.shortcode, self.passkey, now, self.timestamp_window)
        push = check_push(body)
        clock = time.monotonic()
        with self._wake:
            earlier_same = any(
                txn["phone"] == push["phone"] and txn["amount"] == push["amount"]
                and clock - txn["pushed_monotonic"] < DUPLICATE_WINDOW
                for txn in self._transactions.values())
            code, delivery = decide(push, self.shortcode, self.till_number, earlier_same)
            delivery, callback_delay = self.fault_plan.callback(push["phone"], delivery)
            self._serial += 1
            txn = {
                **push, "serial": self._serial,
                "checkout_request_id": new_checkout_id(now, self._serial),
                "merchant_request_id": new_request_id(),
                "timestamp": body["Timestamp"], "pushed_at": now, "pushed_monotonic": clock,
                "decided_monotonic": clock + self.decision_delay,
                "result_code": code,
                "outcome": outcome_of(code),
                "delivery": delivery, "receipt": new_receipt() if code == 0 else None,
                "transaction_date": None, "callbacks_sent": 0, "callback_attempts": 0,
                "callback_errors": [], "callback_statuses": [],
            }
            self._transactions[txn["checkout_request_id"]] = txn
            self._callbacks.plan(txn, callback_times(txn, self.callback_delay + callback_delay,
                                                     self.late_callback_delay))
        held, never = self.fault_plan.push_answer(push["phone"])
        held += self.push_response_delay
        # stop() ends the wait: the connection then closes unanswered
        if held and self._halt.wait(held):
            raise _Drop()
        if drop or never:
            raise _Drop()
        handler.answer(200, {"MerchantRequestID": txn["merchant_request_id"],
                             "CheckoutRequestID": txn["checkout_request_id"],
                             "ResponseCode": "0", "ResponseDescription": PUSH_ACCEPTED,
                             "CustomerMessage": PUSH_ACCEPTED})

    def _c2b_register(self, handler: _Handler, _query: str) -> None:
        body = self._answerable_json(handler, "push")
        version = 1 if "/v1/" in handler.path else 2
        handler.answer(200, self.c2b.register(body, version))

    def _pull_register(self, handler: _Handler, _query: str) -> None:
        body = self._answerable_json(handler, "push")
        handler.answer(200, self.c2b.pull_register(body))

    def _pull_query(self, handler: _Handler, _query: str) -> None:
        with self._lock:
            self.pull_requests += 1
        body = self._answerable_json(handler, "query")
        handler.answer(200, self.c2b.pull_query(body, self.stk_successes()))

    def _status(self, handler: _Handler, _query: str) -> None:
        """Transaction Status: accepted now, the result POSTed to the ResultURL after."""
        body = self._answerable_json(handler, "query")
        check_status_query(body, (self.shortcode, self.c2b.till_number))
        receipt = str(body["TransactionID"]).strip().upper()
        conversation = "AG_" + new_request_id().replace("-", "")[:20]
        result = status_result(receipt, conversation,
                               self.c2b.find(receipt, self.stk_successes()))
        self.status_results.append(result)

        def post() -> None:
            if self._halt.wait(self.status_delay):
                return
            try:
                post_and_read(body["ResultURL"], result, self.callback_timeout)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                log.warning("Transaction Status result to %s failed: %s", body["ResultURL"], exc)

        thread = threading.Thread(target=post, name="daraja-sim-status", daemon=True)
        thread.start()
        handler.answer(200, {"OriginatorConversationID": new_request_id(),
                             "ConversationID": conversation, "ResponseCode": "0",
                             "ResponseDescription": "Accept the service request successfully."})

    def _query(self, handler: _Handler, _query: str) -> None:
        with self._lock:
            self.query_requests += 1
        body = self._answerable_json(handler, "query")
        check_credentials(body, self.shortcode, self.passkey, utcnow(), self.timestamp_window)
        checkout = body.get("CheckoutRequestID")
        with self._lock:
            txn = self._transactions.get(checkout) if isinstance(checkout, str) else None
            txn = dict(txn) if txn else None
        if txn is None:
            raise bad_request("CheckoutRequestID")
        if self.fault_plan.query_outage(txn["phone"]):
            raise Refusal(*FAULTS["busy"])
        if time.monotonic() < txn["decided_monotonic"]:
            handler.answer(500, error_body("500.001.1001", "The transaction is being processed",
                                           request_id=checkout))
            return
        handler.answer(200, query_body(txn))


class _Drop(Exception):
    """Close the connection without an answer (fault "drop")."""
