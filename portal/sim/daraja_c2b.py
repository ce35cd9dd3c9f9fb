"""The Daraja emulator's C2B side: payments made from the M-Pesa menu, and the records
Pull Transactions answers from. Written from the reference sheet (sections 5 and 7),
independently of the client.

- ``register`` (``/mpesa/c2b/v1|v2/registerurl``): keeps the confirmation and validation
  URLs per shortcode; an emulator started with ``sandbox=True`` refuses, as the real
  sandbox does (registration is not possible there).
- ``pay``: a test phone pays the PayBill (with an account) or the Till from its menu:
  validation is asked first when a ValidationURL is registered, then the confirmation is
  POSTed (unless the fault "lost" is asked for). v1 sends the MSISDN hashed, v2 masked.
- ``pull_register`` / ``pull_query`` (``/pulltransactions/v1/...``): every C2B payment
  and every successful STK push of the last 48 hours, paged by OffSetValue.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import threading
from datetime import datetime, timedelta, timezone

from ..timeutil import NAIROBI, utcnow
from .daraja_rules import Refusal, bad_request, new_receipt, new_request_id
from .httpbase import post_bytes

#: How far back Pull Transactions looks.
PULL_HORIZON = timedelta(hours=48)
PULL_DATE = "%Y-%m-%d %H:%M:%S"
SANDBOX_REFUSAL = "URL registration is not allowed in the sandbox"  # the emulator's words
CONFIRMATION_LOST = "lost"


def masked(phone: str) -> str:
    """The payer as v2 shows it: ``2547 ***** 126``."""
    return f"{phone[:4]} ***** {phone[-3:]}"


def hashed(phone: str) -> str:
    """The payer as v1 shows it: SHA-256 of the number, hex."""
    return hashlib.sha256(phone.encode()).hexdigest()


def post_and_read(url: str, body: dict, timeout: float) -> tuple[int, dict | None]:
    """POST ``body`` as JSON to ``url`` as written; returns (status, JSON answer or None)."""
    status, raw = post_bytes(url, json.dumps(body).encode(),
                             {"Content-Type": "application/json"}, timeout)
    try:
        answer = json.loads(raw or b"null")
    except ValueError:
        answer = None
    return status, answer if isinstance(answer, dict) else None


class C2BBook:
    """C2B registrations, payments from the menu and Pull Transactions for one emulator."""

    def __init__(self, shortcode: str, till_number: str | None, *, sandbox: bool = False,
                 timeout: float = 5.0):
        self.shortcode = shortcode
        self.till_number = till_number or "600100"
        #: The real sandbox refuses C2B URL registration.
        self.sandbox = sandbox
        self.timeout = timeout
        #: Records per Pull query page.
        self.pull_page_size = 100
        self._lock = threading.Lock()
        self.registrations: dict[str, dict] = {}
        self.pull_registrations: dict[str, dict] = {}
        self._payments: list[dict] = []

    # -- registration -------------------------------------------------------------------

    def register(self, body: dict, version: int) -> dict:
        """``/mpesa/c2b/v{1,2}/registerurl``: keep the URLs; the sandbox refuses."""
        if self.sandbox:
            raise Refusal(400, "400.002.02", f"Bad Request - {SANDBOX_REFUSAL}")
        shortcode = str(body.get("ShortCode") or "")
        if shortcode not in (self.shortcode, self.till_number):
            raise bad_request("ShortCode")
        if body.get("ResponseType") not in ("Completed", "Cancelled"):
            raise bad_request("ResponseType")
        for name in ("ConfirmationURL", "ValidationURL"):
            if not str(body.get(name) or "").startswith(("http://", "https://")):
                raise bad_request(name)
        with self._lock:
            self.registrations[shortcode] = {
                "confirmation_url": body["ConfirmationURL"],
                "validation_url": body["ValidationURL"],
                "response_type": body["ResponseType"], "version": version}
        return {"OriginatorCoversationID": new_request_id(), "ResponseCode": "0",
                "ResponseDescription": "Success"}

    def pull_register(self, body: dict) -> dict:
        """``/pulltransactions/v1/register``."""
        shortcode = str(body.get("ShortCode") or "")
        if shortcode != self.shortcode:
            raise bad_request("ShortCode")
        if body.get("RequestType") != "Pull":
            raise bad_request("RequestType")
        if not str(body.get("NominatedNumber") or "").isdigit():
            raise bad_request("NominatedNumber")
        with self._lock:
            self.pull_registrations[shortcode] = {
                "nominated_number": body["NominatedNumber"],
                "callback_url": str(body.get("CallBackURL") or "")}
        return {"ResponseRefID": new_request_id(), "ResponseCode": "1000",
                "ResponseMessage": "Success"}

    # -- paying from the menu ----------------------------------------------------------------

    def pay(self, phone: str, amount: int, *, account: str | None = None,
            till: bool = False, confirmation: str = "sent", first_name: str = "TEST") -> dict:
        """A payment from ``phone``'s menu; returns its record (``taken`` False when the
        validation refused it)."""
        shortcode = self.till_number if till else self.shortcode
        now = utcnow()
        with self._lock:
            registration = dict(self.registrations.get(shortcode) or {})
        payment = {
            "receipt": new_receipt(), "phone": phone, "amount": int(amount),
            "account": "" if till else str(account or ""), "till": till,
            "shortcode": shortcode, "paid_at": now, "taken": True,
            "validation": None, "confirmation": confirmation,
            "confirmation_status": None, "confirmation_error": None,
            "first_name": first_name,
        }
        body = self.body_of(payment, registration.get("version", 2))
        if registration.get("validation_url"):
            payment["validation"] = self._validate(registration, body)
            payment["taken"] = payment["validation"] != "rejected"
        if payment["taken"]:
            with self._lock:
                self._payments.append(payment)
            if registration and confirmation != CONFIRMATION_LOST:
                try:
                    payment["confirmation_status"], _ = post_and_read(
                        registration["confirmation_url"], body, self.timeout)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    payment["confirmation_error"] = f"{type(exc).__name__}: {exc}"
        return dict(payment)

    def _validate(self, registration: dict, body: dict) -> str:
        """accepted / rejected / no answer (then ResponseType decides)."""
        try:
            status, answer = post_and_read(registration["validation_url"], body, self.timeout)
        except (OSError, http.client.HTTPException, ValueError):
            status, answer = 0, None
        if status == 200 and answer is not None:
            return "accepted" if str(answer.get("ResultCode")) == "0" else "rejected"
        return "accepted" if registration["response_type"] == "Completed" else "rejected"

    def body_of(self, payment: dict, version: int = 2) -> dict:
        """The confirmation / validation body of the reference sheet."""
        local = payment["paid_at"].replace(tzinfo=timezone.utc).astimezone(NAIROBI)
        return {
            "TransactionType": "Buy Goods" if payment["till"] else "Pay Bill",
            "TransID": payment["receipt"], "TransTime": local.strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{payment['amount']:.2f}", "BusinessShortCode": payment["shortcode"],
            "BillRefNumber": payment["account"], "InvoiceNumber": "",
            "OrgAccountBalance": "25.00", "ThirdPartyTransID": "",
            "MSISDN": hashed(payment["phone"]) if version == 1 else masked(payment["phone"]),
            "FirstName": payment["first_name"], "MiddleName": "", "LastName": "",
        }

    @property
    def payments(self) -> list[dict]:
        """Every payment taken from the menu, oldest first (copies)."""
        with self._lock:
            return [dict(p) for p in self._payments]

    # -- Pull Transactions ---------------------------------------------------------------------

    def pull_query(self, body: dict, stk_successes: list[dict]) -> dict:
        """``/pulltransactions/v1/query``: the window's records, one page from OffSetValue."""
        shortcode = str(body.get("ShortCode") or "")
        with self._lock:
            registered = shortcode in self.pull_registrations
        if shortcode != self.shortcode:
            raise bad_request("ShortCode")
        if not registered:
            raise Refusal(400, "400.002.02", "Bad Request - ShortCode not registered for Pull")
        start, end = (_nairobi_date(body.get(name), name) for name in ("StartDate", "EndDate"))
        now = utcnow()
        if start < now - PULL_HORIZON - timedelta(minutes=1) or end < start:
            raise bad_request("StartDate")
        try:
            offset = int(str(body.get("OffSetValue", "0")))
        except ValueError as exc:
            raise bad_request("OffSetValue") from exc
        records = [r for r in self._records(stk_successes)
                   if start <= r[0].replace(microsecond=0) <= end]
        records.sort(key=lambda r: (r[0], r[1]["transactionId"]))
        page = [r[1] for r in records[offset:offset + self.pull_page_size]]
        return {"ResponseRefID": new_request_id(), "ResponseCode": "1000",
                "ResponseMessage": "Success", "Response": [page]}

    def find(self, receipt: str, stk_successes: list[dict]) -> dict | None:
        """A payment by its receipt (menu or STK), for Transaction Status."""
        for p in self.payments:
            if p["receipt"] == receipt:
                return {"at": p["paid_at"], "phone": p["phone"], "amount": p["amount"],
                        "shortcode": p["shortcode"],
                        "kind": "Buy Goods" if p["till"] else "Pay Bill"}
        for txn in stk_successes:
            if txn["receipt"] == receipt:
                return {"at": txn["pushed_at"], "phone": txn["phone"], "amount": txn["amount"],
                        "shortcode": self.shortcode, "kind": "Pay Bill Online"}
        return None

    def _records(self, stk_successes: list[dict]) -> list[tuple[datetime, dict]]:
        rows = []
        for p in self.payments:
            if p["shortcode"] != self.shortcode and not p["till"]:
                continue
            rows.append((p["paid_at"], _record(
                p["receipt"], p["paid_at"], p["phone"], p["amount"], p["account"],
                "c2b-buy-goods-debit" if p["till"] else "c2b-pay-bill-debit")))
        for txn in stk_successes:
            rows.append((txn["pushed_at"], _record(
                txn["receipt"], txn["pushed_at"], txn["phone"], txn["amount"],
                txn["account_reference"], "c2b-pay-bill-debit")))
        return rows


def check_status_query(body: dict, shortcodes: tuple[str, ...]) -> None:
    """Transaction Status's field rules (reference section 7); raises Refusal."""
    for name in ("Initiator", "SecurityCredential", "TransactionID"):
        if not str(body.get(name) or "").strip():
            raise bad_request(name)
    if body.get("CommandID") != "TransactionStatusQuery":
        raise bad_request("CommandID")
    if str(body.get("PartyA") or "") not in shortcodes:
        raise bad_request("PartyA")
    if str(body.get("IdentifierType")) != "4":
        raise bad_request("IdentifierType")
    for name in ("ResultURL", "QueueTimeOutURL"):
        if not str(body.get(name) or "").startswith(("http://", "https://")):
            raise bad_request(name)


def status_result(receipt: str, conversation_id: str, found: dict | None) -> dict:
    """The result POSTed to the ResultURL: the payment's parameters, or "not found"
    (the emulator's own ResultCode 1 and words: no official sample for a miss)."""
    if found is None:
        return {"Result": {"ResultType": 0, "ResultCode": 1,
                           "ResultDesc": "No transaction with that receipt (emulator)",
                           "OriginatorConversationID": new_request_id(),
                           "ConversationID": conversation_id, "TransactionID": receipt}}
    local = found["at"].replace(tzinfo=timezone.utc).astimezone(NAIROBI)
    when = int(local.strftime("%Y%m%d%H%M%S"))
    parameters = [
        {"Key": "DebitPartyName", "Value": f"{found['phone']} - TEST CUSTOMER"},
        {"Key": "CreditPartyName", "Value": f"{found['shortcode']} - Kibanda Emulator"},
        {"Key": "InitiatedTime", "Value": when}, {"Key": "FinalisedTime", "Value": when},
        {"Key": "ReasonType", "Value": found["kind"]},
        {"Key": "TransactionStatus", "Value": "Completed"},
        {"Key": "Amount", "Value": found["amount"]},
        {"Key": "ReceiptNo", "Value": receipt},
    ]
    return {"Result": {"ResultType": 0, "ResultCode": 0,
                       "ResultDesc": "The service request is processed successfully.",
                       "OriginatorConversationID": new_request_id(),
                       "ConversationID": conversation_id, "TransactionID": receipt,
                       "ResultParameters": {"ResultParameter": parameters},
                       "ReferenceData": {"ReferenceItem": {"Key": "Occasion"}}}}


def _record(receipt: str, at: datetime, phone: str, amount: int, account: str,
            kind: str) -> dict:
    """One Pull record as the reference sheet shows it. Its example's trxDate lies in the
    Nairobi query window although it ends in Z: the emulator writes Nairobi time so."""
    local = at.replace(tzinfo=timezone.utc).astimezone(NAIROBI)
    return {"transactionId": receipt, "trxDate": local.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "msisdn": int(phone), "sender": "UNKNOWN", "transactiontype": kind,
            "billreference": account, "amount": str(amount),
            "organizationname": "Kibanda Emulator"}


def _nairobi_date(text, name: str) -> datetime:
    """A Pull window bound (``YYYY-MM-DD HH:MM:SS``, Nairobi) as naive UTC."""
    try:
        local = datetime.strptime(str(text or ""), PULL_DATE)
    except ValueError as exc:
        raise bad_request(name) from exc
    return local.replace(tzinfo=NAIROBI).astimezone(timezone.utc).replace(tzinfo=None)
