"""Africa's Talking SMS over ``requests``: ``POST {base}/version1/messaging``.

Facts from the reference sheet (docs/ and the africastalking-python SDK): the ``apiKey``
header, form fields ``username``, ``to``, ``message`` and ``from``; HTTP 201 with
``SMSMessageData.Recipients[]`` each holding ``statusCode``, ``status``, ``cost``
("KES 0.8000") and ``messageId``. 100-102 are accepted; 402-407 and 409 are permanent for
that message; 401 (RiskHold: the account is held for review) and 500-502 may pass. The
API key is never logged and never part of an error's text.
"""
from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import gsm7
from .provider import Accepted, Refused, SmsRetryable

log = logging.getLogger(__name__)

LIVE_URL = "https://api.africastalking.com"
SANDBOX_URL = "https://api.sandbox.africastalking.com"
SEND_PATH = "/version1/messaging"
ACCEPTED_CODES = {100, 101, 102}  # Processed, Sent, Queued
#: 401 RiskHold: the account is held while Africa's Talking reviews it; it clears.
RETRYABLE_CODES = {401, 500, 501, 502}
#: The most of an answer kept in an error's text.
ANSWER_KEPT = 200


def base_url(username: str, configured: str = "") -> str:
    """``configured``, else the sandbox for the username "sandbox", else the live API."""
    if configured:
        return configured.rstrip("/")
    return SANDBOX_URL if username == "sandbox" else LIVE_URL


def parse_cost(text) -> Decimal:
    """"KES 0.8000" -> Decimal("0.8000"); anything unreadable is 0."""
    amount = str(text or "").strip().split(" ")[-1]
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return Decimal(0)
    return value if value.is_finite() and value >= 0 else Decimal(0)


class AfricasTalking:
    """One Africa's Talking account: ``send(to, message)`` -> Accepted or Refused."""

    def __init__(self, username: str, api_key: str, *, sender_id: str = "", base: str = "",
                 connect_timeout: float = 5.0, read_timeout: float = 20.0,
                 session: requests.Session | None = None):
        if not username or not api_key:
            raise ValueError("Africa's Talking needs a username and an API key")
        self.username = username
        self._api_key = api_key
        self.sender_id = sender_id
        self.url = base_url(username, base) + SEND_PATH
        self.timeout = (connect_timeout, read_timeout)
        self._session = session or requests.Session()

    def __repr__(self) -> str:  # never the key
        return f"AfricasTalking(username={self.username!r}, url={self.url!r})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def send(self, to: str, message: str) -> Accepted | Refused:
        """Send ``message`` to ``to`` (+2547XXXXXXXX); raises :class:`SmsRetryable`."""
        form = {"username": self.username, "to": to, "message": message}
        if self.sender_id:
            form["from"] = self.sender_id
        try:
            answer = self._session.post(
                self.url, data=form, timeout=self.timeout,
                headers={"apiKey": self._api_key, "Accept": "application/json",
                         "Content-Type": "application/x-www-form-urlencoded"})
        except requests.ConnectTimeout as exc:
            raise SmsRetryable(f"Africa's Talking not reachable: {type(exc).__name__}",
                               network=True) from None
        except requests.ConnectionError as exc:
            # Refused or unresolvable before anything was sent: safe. Otherwise the request
            # may have arrived and only its answer was lost.
            before = _never_sent(exc)
            raise SmsRetryable(f"Africa's Talking connection failed: {type(exc).__name__}",
                               network=True, maybe_sent=not before) from None
        except requests.Timeout:
            raise SmsRetryable("Africa's Talking did not answer in time", network=True,
                               maybe_sent=True) from None
        return self._outcome(answer, message)

    def _outcome(self, answer: requests.Response, message: str) -> Accepted | Refused:
        text = answer.text[:ANSWER_KEPT]
        if answer.status_code >= 500:
            raise SmsRetryable(f"Africa's Talking answered HTTP {answer.status_code}: {text}")
        if answer.status_code in (401, 403):
            # The username or the key is wrong: every message waits until a technician
            # fixes the settings (the page says so), none is lost.
            raise SmsRetryable(f"Africa's Talking refused the username or API key "
                               f"(HTTP {answer.status_code}): {text}")
        if answer.status_code == 429:
            raise SmsRetryable("Africa's Talking asked us to slow down (HTTP 429)")
        if answer.status_code >= 400:
            return Refused(answer.status_code, f"HTTP {answer.status_code}: {text}")
        try:
            data = answer.json()["SMSMessageData"]
            recipients = data.get("Recipients") or []
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SmsRetryable(f"unreadable answer from Africa's Talking "
                               f"(HTTP {answer.status_code}): {text}", maybe_sent=True) from None
        if not recipients:
            # No recipient at all: the whole request was refused (InvalidSenderId, a bad
            # number); the Message field says why.
            return Refused(0, str(data.get("Message") or "Rejected")[:ANSWER_KEPT])
        first = recipients[0] if isinstance(recipients[0], dict) else {}
        try:
            code = int(first.get("statusCode"))
        except (TypeError, ValueError):
            code = 0
        status = str(first.get("status") or "")[:60]
        if code in ACCEPTED_CODES:
            return Accepted(str(first.get("messageId") or "")[:80], parse_cost(first.get("cost")),
                            gsm7.parts(message), status or "Success")
        if code in RETRYABLE_CODES or code >= 500:
            raise SmsRetryable(f"Africa's Talking: {status or code} ({code})")
        return Refused(code, status or f"statusCode {code}")


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before the request left (refused, no route, DNS)."""
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
