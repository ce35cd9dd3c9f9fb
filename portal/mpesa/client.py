"""The M-Pesa (Daraja) client: OAuth through a shared token store, STK Push, STK Query.

Facts it relies on are in the Daraja reference sheet. The client never re-sends a push
whose answer did not arrive (:class:`MpesaTimeout`): the caller settles it by query. It
knows nothing of the appliance's database: its token cache is a store passed in.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from ..errors import (
    InvalidAmount, MpesaBusy, MpesaConfigError, MpesaError, MpesaTimeout, MpesaUnreachable,
)
from ..phone import normalise_phone
from ..timeutil import NAIROBI, nairobi_timestamp, utcnow
from .results import error_from_answer
from .tokens import CachedToken, MemoryTokenStore, TokenStore

PAYBILL, TILL = "paybill", "till"
#: Other spellings technicians use for MPESA_TYPE.
TYPE_ALIASES = {"buygoods": TILL, "buy_goods": TILL, "buy-goods": TILL, "pay_bill": PAYBILL,
                "pay-bill": PAYBILL}
TRANSACTION_TYPES = {PAYBILL: "CustomerPayBillOnline", TILL: "CustomerBuyGoodsOnline"}
OAUTH_PATH = "/oauth/v1/generate?grant_type=client_credentials"
PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH = "/mpesa/stkpushquery/v1/query"
C2B_REGISTER_PATH = "/mpesa/c2b/v2/registerurl"
PULL_REGISTER_PATH = "/pulltransactions/v1/register"
PULL_QUERY_PATH = "/pulltransactions/v1/query"
#: Pull Transactions covers the last 48 hours; pages are read until one comes back empty.
PULL_HORIZON = timedelta(hours=48)
PULL_MAX_PAGES = 200
SANDBOX_HOST = "sandbox.safaricom.co.ke"
STATUS_PATH = "/mpesa/transactionstatus/v1/query"
ACCOUNT_REFERENCE_MAX = 12
TRANSACTION_DESC_MAX = 13
#: Refresh this long before Daraja's expiry (or at half-life for short-lived tokens).
TOKEN_REFRESH_MARGIN = 60

# One lock for the whole process: its threads queue here, other processes queue on the
# token store's claim, so only one of them asks Daraja for a token.
_TOKEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class StkPushResult:
    """Daraja accepted the push (the prompt is on its way; nothing is paid yet)."""

    merchant_request_id: str
    checkout_request_id: str
    customer_message: str


@dataclass(frozen=True)
class QueryResult:
    """Where an STK Push stands: "pending", "success" or "failed" (with Daraja's code)."""

    state: str
    result_code: int | None
    result_desc: str

    PENDING, SUCCESS, FAILED = "pending", "success", "failed"


@dataclass(frozen=True)
class PulledTransaction:
    """One payment into the shortcode as Pull Transactions lists it (C2B or STK).

    ``at`` is naive UTC. Field names are tolerated in any case (reference section 7 marks
    them unconfirmed); ``raw`` keeps the record as it came.
    """

    receipt: str
    at: datetime | None
    msisdn: str
    bill_reference: str
    amount: str
    kind: str
    raw: dict


class MpesaClient:
    """Talks to Daraja for one shortcode; safe to share between threads."""

    def __init__(self, base_url: str, consumer_key: str, consumer_secret: str,
                 shortcode: str, passkey: str, *, mpesa_type: str = PAYBILL,
                 party_b: str | None = None, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, min_amount: int = 1, max_amount: int = 250000,
                 session: requests.Session | None = None,
                 token_store: TokenStore | None = None):
        self.base_url = str(base_url or "").rstrip("/")
        self.consumer_key = str(consumer_key or "")
        self.consumer_secret = str(consumer_secret or "")
        self.shortcode = str(shortcode or "").strip()
        self.passkey = str(passkey or "")
        kind = str(mpesa_type or PAYBILL).strip().lower()
        self.mpesa_type = TYPE_ALIASES.get(kind, kind)
        self.party_b = str(party_b).strip() if party_b not in (None, "") else None
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.min_amount = int(min_amount)
        self.max_amount = int(max_amount)
        if self.mpesa_type not in TRANSACTION_TYPES:
            raise MpesaConfigError(f"MPESA_TYPE must be paybill or till, not {mpesa_type!r}")
        if self.mpesa_type == TILL and not self.party_b:
            raise MpesaConfigError("MPESA_TYPE is till but MPESA_PARTYB (the till number) "
                                   "is empty; MPESA_SHORTCODE must be the store number")
        self._own_session = session is None
        self.session = session or requests.Session()
        self.tokens = token_store if token_store is not None else MemoryTokenStore()
        # Short and stable: a store may keep names of at most 60 characters.
        digest = hashlib.sha256(f"{self.base_url}\0{self.consumer_key}".encode()).hexdigest()
        self.token_name = f"daraja:{digest[:40]}"

    @classmethod
    def from_settings(cls, config: Mapping[str, Any],
                      token_store: TokenStore | None = None) -> "MpesaClient":
        """Build a client from the ``MPESA_*`` settings (a Flask config or a settings dict)."""
        return cls(
            config.get("MPESA_BASE_URL", "https://sandbox.safaricom.co.ke"),
            config.get("MPESA_CONSUMER_KEY", ""), config.get("MPESA_CONSUMER_SECRET", ""),
            config.get("MPESA_SHORTCODE", ""), config.get("MPESA_PASSKEY", ""),
            mpesa_type=config.get("MPESA_TYPE") or PAYBILL,
            party_b=config.get("MPESA_PARTYB") or None,
            connect_timeout=config.get("MPESA_CONNECT_TIMEOUT", 5.0),
            read_timeout=config.get("MPESA_READ_TIMEOUT", 30.0),
            min_amount=config.get("MPESA_MIN_AMOUNT", 1),
            max_amount=config.get("MPESA_MAX_AMOUNT", 250000),
            token_store=token_store,
        )

    def problems(self) -> list[str]:
        """What is missing from the configuration (empty when the client can be used)."""
        found = []
        if not self.base_url.startswith(("http://", "https://")):
            found.append("MPESA_BASE_URL must start with https://")
        for name, value in (("MPESA_CONSUMER_KEY", self.consumer_key),
                            ("MPESA_CONSUMER_SECRET", self.consumer_secret),
                            ("MPESA_PASSKEY", self.passkey)):
            if not value:
                found.append(f"{name} is empty")
        if not (self.shortcode.isdigit() and 5 <= len(self.shortcode) <= 7):
            found.append(f"MPESA_SHORTCODE {self.shortcode!r} is not a 5-7 digit number")
        return found

    def close(self) -> None:
        """Release the HTTP connections (only those of a session this client created)."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> "MpesaClient":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- OAuth -------------------------------------------------------------------------

    def access_token(self, now: datetime | None = None, *, stale: str | None = None) -> str:
        """A valid bearer token from the shared store, fetched from Daraja only when needed.

        ``stale`` is a token Daraja has just refused: it is replaced unless another worker
        already replaced it.
        """
        self._check_configured()
        now = _naive_utc(now)

        def usable(cached: CachedToken | None) -> bool:
            return cached is not None and cached.token != stale and cached.refresh_at > now

        # Long enough for one OAuth call to finish; a claim left by a dead worker lapses.
        lease_seconds = sum(self.timeout) + 5
        give_up = time.monotonic() + lease_seconds + 5
        with self.tokens.session():
            while True:
                cached = self.tokens.read(self.token_name)
                if usable(cached):
                    return cached.token
                with _TOKEN_LOCK:
                    # The store is locked only for this short claim, never while Daraja
                    # answers: settling a payment must not wait behind a slow token fetch.
                    claimed = self.tokens.claim(self.token_name, usable, lease_seconds)
                    if isinstance(claimed, CachedToken):
                        return claimed.token
                    if claimed:
                        try:
                            token, expires_in = self._fetch_token()
                        except BaseException:
                            self.tokens.release(self.token_name)
                            raise
                        margin = min(TOKEN_REFRESH_MARGIN, expires_in // 2)
                        refresh_at = now + timedelta(seconds=expires_in - margin)
                        self.tokens.save(self.token_name, CachedToken(token, refresh_at))
                        return token
                # Another process is fetching: wait for its token rather than invalidate it.
                if time.monotonic() > give_up:
                    raise MpesaBusy("another worker has been fetching the Daraja token for too long")
                time.sleep(0.1)

    def check_credentials(self) -> None:
        """Ask Daraja for a fresh token (never the cached one): raises when it refuses."""
        self._check_configured()
        self._fetch_token()

    def _fetch_token(self) -> tuple[str, int]:
        credentials = f"{self.consumer_key}:{self.consumer_secret}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
        response = self._send("GET", OAUTH_PATH, headers=headers, what="OAuth", may_retry=True)
        if response.status_code != 200:
            error = error_from_answer(response.status_code, response.text, what="OAuth")
            if isinstance(error, (MpesaBusy, MpesaTimeout)):
                raise error
            raise MpesaConfigError(f"Daraja refused the consumer key/secret: {error}",
                                   error_code=getattr(error, "error_code", None))
        answer = _json(response, "OAuth")
        try:
            token = str(answer["access_token"])
            expires_in = int(answer["expires_in"])  # "3599" from older gateways
        except (KeyError, TypeError, ValueError) as exc:
            raise MpesaError(f"OAuth answer without a usable token: {response.text[:200]}") \
                from exc
        if not token or expires_in <= 0:
            raise MpesaError(f"OAuth answer without a usable token: {response.text[:200]}")
        return token, expires_in

    # -- STK Push and Query -----------------------------------------------------------

    def stk_push(self, phone: str, amount: int | str | float, account_reference: str,
                 description: str, callback_url: str,
                 now: datetime | None = None) -> StkPushResult:
        """Send the payment prompt to ``phone``; accepted is not paid (wait for the result).

        Raises MpesaTimeout when the answer did not come back: do NOT call again, settle
        the attempt with :meth:`stk_query` instead.
        """
        msisdn = normalise_phone(phone)
        whole = self.check_amount(amount)
        callback_url = str(callback_url or "").strip()
        if not callback_url.startswith(("http://", "https://")) or any(
                ch.isspace() for ch in callback_url):
            # Only its start: the rest of a CallBackURL is a secret and never reaches a log.
            raise MpesaConfigError(f"callback URL {callback_url[:12]!r}... is not an http(s) URL "
                                   "(check CALLBACK_BASE_URL)")
        self._check_configured()
        timestamp = nairobi_timestamp(now)
        body = {
            "BusinessShortCode": self.shortcode,
            "Password": self.password(timestamp),
            "Timestamp": timestamp,
            "TransactionType": TRANSACTION_TYPES[self.mpesa_type],
            "Amount": whole,
            "PartyA": msisdn,
            "PartyB": self.party_b if self.mpesa_type == TILL else self.shortcode,
            "PhoneNumber": msisdn,
            "CallBackURL": callback_url,
            "AccountReference": (str(account_reference or "").strip()
                                 or "WIFI")[:ACCOUNT_REFERENCE_MAX],
            "TransactionDesc": (str(description or "").strip()
                                or "WiFi")[:TRANSACTION_DESC_MAX],
        }
        response = self._api_post(PUSH_PATH, body, now, what="STK push")
        if response.status_code != 200:
            raise error_from_answer(response.status_code, response.text, what="STK push")
        answer = _json(response, "STK push")
        if str(answer.get("ResponseCode")) != "0" or not answer.get("CheckoutRequestID"):
            raise error_from_answer(response.status_code, json.dumps({
                "errorCode": str(answer.get("ResponseCode") or answer.get("errorCode") or ""),
                "errorMessage": answer.get("ResponseDescription") or answer.get(
                    "errorMessage") or response.text[:200]}), what="STK push")
        return StkPushResult(
            merchant_request_id=str(answer.get("MerchantRequestID") or ""),
            checkout_request_id=str(answer["CheckoutRequestID"]),
            customer_message=str(answer.get("CustomerMessage") or ""),
        )

    def stk_query(self, checkout_request_id: str, now: datetime | None = None) -> QueryResult:
        """Ask Daraja how a push ended: pending, success or failed (with the ResultCode)."""
        self._check_configured()
        timestamp = nairobi_timestamp(now)
        body = {
            "BusinessShortCode": self.shortcode,
            "Password": self.password(timestamp),
            "Timestamp": timestamp,
            "CheckoutRequestID": str(checkout_request_id),
        }
        response = self._api_post(QUERY_PATH, body, now, what="STK query", may_retry=True)
        text = response.text
        if response.status_code != 200:
            if "being processed" in text.lower():
                return QueryResult(QueryResult.PENDING, None, "The transaction is being processed")
            raise error_from_answer(response.status_code, text, what="STK query")
        answer = _json(response, "STK query")
        if "ResultCode" not in answer or answer["ResultCode"] in (None, ""):
            return QueryResult(QueryResult.PENDING, None,
                               str(answer.get("ResponseDescription") or ""))
        try:
            code = int(answer["ResultCode"])  # a string here, a number in callbacks
        except (TypeError, ValueError) as exc:
            raise MpesaError(f"STK query: ResultCode {answer['ResultCode']!r} is not a number") \
                from exc
        state = QueryResult.SUCCESS if code == 0 else QueryResult.FAILED
        return QueryResult(state, code, str(answer.get("ResultDesc") or ""))

    # -- C2B and Pull Transactions ---------------------------------------------------

    def register_c2b_urls(self, confirmation_url: str, validation_url: str,
                          response_type: str = "Completed",
                          now: datetime | None = None) -> dict:
        """Register the C2B confirmation and validation URLs (v2) for this shortcode.

        The Daraja sandbox does not allow it: that is said plainly before anything is sent.
        """
        if SANDBOX_HOST in self.base_url:
            raise MpesaConfigError(
                "The Daraja sandbox does not allow C2B URL registration: payments from the "
                "M-Pesa menu can only be tried against the emulator (kibanda sim mpesa) "
                "until the site has production credentials")
        shortcode = self.party_b if self.mpesa_type == TILL else self.shortcode
        body = {"ShortCode": shortcode, "ResponseType": response_type,
                "ConfirmationURL": confirmation_url, "ValidationURL": validation_url}
        response = self._api_post(C2B_REGISTER_PATH, body, now, what="C2B register",
                                  may_retry=True)
        if response.status_code != 200:
            raise error_from_answer(response.status_code, response.text, what="C2B register")
        answer = _json(response, "C2B register")
        if str(answer.get("ResponseCode", "0")) not in ("0", "00000000"):
            raise MpesaError(f"C2B register refused: {response.text[:200]}")
        return answer

    def pull_register(self, nominated_number: str, callback_url: str,
                      now: datetime | None = None) -> dict:
        """Register this shortcode for Pull Transactions (once)."""
        body = {"ShortCode": self.shortcode, "RequestType": "Pull",
                "NominatedNumber": normalise_phone(nominated_number),
                "CallBackURL": callback_url}
        response = self._api_post(PULL_REGISTER_PATH, body, now, what="Pull register",
                                  may_retry=True)
        if response.status_code != 200:
            raise error_from_answer(response.status_code, response.text, what="Pull register")
        return _json(response, "Pull register")

    def pull_query(self, start: datetime, end: datetime, offset: int = 0,
                   now: datetime | None = None) -> list[PulledTransaction]:
        """One page of payments between ``start`` and ``end`` (naive UTC), from ``offset``."""
        body = {"ShortCode": self.shortcode, "StartDate": _pull_date(start),
                "EndDate": _pull_date(end), "OffSetValue": str(int(offset))}
        response = self._api_post(PULL_QUERY_PATH, body, now, what="Pull query",
                                  may_retry=True)
        if response.status_code != 200:
            raise error_from_answer(response.status_code, response.text, what="Pull query")
        answer = _json(response, "Pull query")
        pages = answer.get("Response") or answer.get("response") or []
        # The sheet shows a list holding one list of records; accept a flat list too.
        items = [item for page in pages for item in (page if isinstance(page, list) else [page])]
        return [found for found in map(_pulled, items) if found is not None]

    def pull_transactions(self, start: datetime, end: datetime,
                          now: datetime | None = None) -> list[PulledTransaction]:
        """Every payment between ``start`` and ``end`` (at most 48 h back), all pages."""
        now = _naive_utc(now)
        start = max(start, now - PULL_HORIZON)
        found: list[PulledTransaction] = []
        for _page in range(PULL_MAX_PAGES):
            page = self.pull_query(start, end, offset=len(found), now=now)
            if not page:
                break
            found.extend(page)
        return found

    def transaction_status(self, receipt: str, *, initiator: str, security_credential: str,
                           result_url: str, timeout_url: str,
                           now: datetime | None = None) -> dict:
        """Ask M-Pesa about one receipt (Transaction Status). The answer only says the
        question was accepted: the result is POSTed to ``result_url`` later."""
        if not initiator or not security_credential:
            raise MpesaConfigError("Transaction Status needs MPESA_INITIATOR_NAME and "
                                   "MPESA_SECURITY_CREDENTIAL")
        body = {"Initiator": initiator, "SecurityCredential": security_credential,
                "CommandID": "TransactionStatusQuery", "TransactionID": str(receipt),
                "PartyA": self.party_b if self.mpesa_type == TILL else self.shortcode,
                "IdentifierType": "4", "ResultURL": result_url,
                "QueueTimeOutURL": timeout_url, "Remarks": "Kibanda receipt check",
                "Occasion": "reconnect"}
        response = self._api_post(STATUS_PATH, body, now, what="Transaction Status",
                                  may_retry=True)
        if response.status_code != 200:
            raise error_from_answer(response.status_code, response.text,
                                    what="Transaction Status")
        answer = _json(response, "Transaction Status")
        if str(answer.get("ResponseCode", "")) != "0":
            raise MpesaError(f"Transaction Status refused: {response.text[:200]}")
        return answer

    def password(self, timestamp: str) -> str:
        """Daraja's Password: base64 of shortcode + passkey + the request's own Timestamp."""
        return base64.b64encode(f"{self.shortcode}{self.passkey}{timestamp}".encode()).decode()

    def check_amount(self, amount: int | str | float) -> int:
        """Return ``amount`` as whole KES within the limits, else raise InvalidAmount."""
        if isinstance(amount, bool):
            raise InvalidAmount(f"amount {amount!r} is not a number")
        try:
            value = Decimal(str(amount).strip())
        except (InvalidOperation, ValueError) as exc:
            raise InvalidAmount(f"amount {amount!r} is not a number") from exc
        if not value.is_finite() or value != value.to_integral_value():
            raise InvalidAmount(f"amount {amount!r} is not whole KES (M-Pesa takes no cents)")
        whole = int(value)
        if not self.min_amount <= whole <= self.max_amount:
            raise InvalidAmount(f"amount {whole} is outside KES {self.min_amount}-"
                                f"{self.max_amount} (MPESA_MIN_AMOUNT / MPESA_MAX_AMOUNT)")
        return whole

    # -- transport -------------------------------------------------------------------

    def _api_post(self, path: str, body: dict, now: datetime | None, *, what: str,
                  may_retry: bool = False) -> requests.Response:
        """POST with the bearer token; on 404.001.03 refresh the token once and retry once."""
        token = self.access_token(now)
        response = self._post_json(path, body, token, what=what, may_retry=may_retry)
        if _is_invalid_token(response):
            # The gateway refused the request before M-Pesa saw it, so a retry is safe.
            token = self.access_token(now, stale=token)
            response = self._post_json(path, body, token, what=what, may_retry=may_retry)
            if _is_invalid_token(response):
                raise MpesaConfigError(f"{what}: Daraja refused a fresh access token "
                                       f"({response.text[:200]})", error_code="404.001.03")
        return response

    def _post_json(self, path: str, body: dict, token: str, *, what: str,
                   may_retry: bool) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return self._send("POST", path, headers=headers, data=json.dumps(body), what=what,
                          may_retry=may_retry)

    def _send(self, method: str, path: str, *, what: str, may_retry: bool,
              **kwargs) -> requests.Response:
        """One HTTP exchange with both timeouts, transport failures mapped to domain errors.

        ``may_retry`` says the request is harmless to repeat (OAuth, query); it only
        changes the wording: nothing here retries on its own.
        """
        url = self.base_url + path
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.ConnectTimeout as exc:
            raise MpesaUnreachable(f"{what}: no connection to {self.base_url} within "
                                   f"{self.timeout[0]:g}s") from exc
        except requests.exceptions.ReadTimeout as exc:
            hint = "" if may_retry else " - it may have reached M-Pesa: do not re-send"
            raise MpesaTimeout(f"{what}: no answer from {self.base_url} within "
                               f"{self.timeout[1]:g}s{hint}") from exc
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                raise MpesaUnreachable(f"{what}: cannot connect to {self.base_url}: {exc}") \
                    from exc
            # The connection broke after the request went out: same as a read timeout.
            raise MpesaTimeout(f"{what}: connection to {self.base_url} broke before the "
                               f"answer: {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise MpesaUnreachable(f"{what}: request to {self.base_url} failed: {exc}") \
                from exc

    def _check_configured(self) -> None:
        found = self.problems()
        if found:
            raise MpesaConfigError("M-Pesa is not configured: " + "; ".join(found))


def _naive_utc(moment: datetime | None) -> datetime:
    """``moment`` as naive UTC (how stored times are kept); now when None."""
    if moment is None:
        return utcnow()
    if moment.tzinfo is not None:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _pull_date(moment: datetime) -> str:
    """A Pull window bound: Nairobi wall-clock time, ``YYYY-MM-DD HH:MM:SS``."""
    return moment.replace(tzinfo=timezone.utc).astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S")


def _pulled(item) -> PulledTransaction | None:
    """A Pull record, its names in any case; None when it has no receipt."""
    if not isinstance(item, dict):
        return None
    fields = {str(k).lower(): v for k, v in item.items()}
    receipt = str(fields.get("transactionid") or fields.get("transid") or "").strip()
    if not receipt:
        return None
    at = None
    text = str(fields.get("trxdate") or "").strip().rstrip("Z")
    for shape in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            # The sheet's example has a Nairobi time (inside the Nairobi query window)
            # followed by a Z: read it as Nairobi time.
            local = datetime.strptime(text[:19], shape).replace(tzinfo=NAIROBI)
            at = local.astimezone(timezone.utc).replace(tzinfo=None)
            break
        except ValueError:
            continue
    return PulledTransaction(
        receipt=receipt[:20], at=at, msisdn=str(fields.get("msisdn") or "")[:80],
        bill_reference=str(fields.get("billreference") or "")[:40],
        amount=str(fields.get("amount") or "")[:20],
        kind=str(fields.get("transactiontype") or "")[:40], raw=item)


def _is_invalid_token(response: requests.Response) -> bool:
    if response.status_code < 400:
        return False
    text = response.text
    return "404.001.03" in text or "Invalid Access Token" in text


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the failure happened before a connection existed (DNS, refused)."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (NewConnectionError, ConnectTimeoutError)):
            return True
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (
            current.__cause__ or current.__context__ or
            (current.args[0] if current.args and isinstance(current.args[0], BaseException)
             else None))
    return False


def _json(response: requests.Response, what: str) -> dict:
    try:
        answer = response.json()
    except ValueError as exc:
        raise MpesaError(f"{what}: answer is not JSON: {response.text[:200]}") from exc
    if not isinstance(answer, dict):
        raise MpesaError(f"{what}: answer is not a JSON object: {response.text[:200]}")
    return answer
