"""What the Daraja emulator checks and answers: field rules, test numbers, payload shapes."""
from __future__ import annotations

import base64
import re
import secrets
import string
from datetime import datetime, timezone

from ..timeutil import NAIROBI

SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
PAYBILL_TYPE, TILL_TYPE = "CustomerPayBillOnline", "CustomerBuyGoodsOnline"

SUCCESS_DESC = "The service request is processed successfully."
#: ResultCode -> ResultDesc as Daraja words them.
RESULT_DESCS = {
    0: SUCCESS_DESC,
    1: "The balance is insufficient for the transaction.",
    3: "The amount is above the maximum allowed.",
    17: "Rule limited.",
    1019: "Transaction has expired",
    1032: "Request cancelled by user",
    1037: "DS timeout user cannot be reached",
    2001: "The initiator information is invalid.",
    2028: "The request is not permitted according to product assignment",
}

#: ResultCode -> the outcome word the test-control view reports (``transactions``), from
#: the ResultCode meanings on the Daraja reference sheet. 1001, 9999 and 26 are only
#: community-reported there. Any code not listed is "unknown".
OUTCOMES = {
    0: "success",
    1: "insufficient_funds",
    2: "limit",   # below the minimum amount
    3: "limit",   # above the maximum amount
    4: "limit",   # would exceed the payer's daily limit
    8: "limit",   # would exceed the PayBill/Till maximum balance
    17: "limit",  # "rule limited": the same amount to the same phone within 2 minutes
    26: "busy",
    1001: "busy",  # unable to lock subscriber
    1019: "expired",
    1025: "busy",  # error sending the push
    1032: "cancelled",
    1037: "unreachable",
    2001: "wrong_pin",
    2028: "operator",  # TransactionType and PartyB do not pair: the site's settings
    8006: "operator",  # security credential locked
    9999: "busy",
}
UNKNOWN_OUTCOME = "unknown"

# How the callback goes out for a test number.
ONCE, LOST, TWICE, LATE = "once", "lost", "twice", "late"

#: Test phone -> (ResultCode, callback behaviour). Any other valid number succeeds.
TEST_NUMBERS: dict[str, tuple[int, str]] = {
    "254700000001": (1, ONCE),
    "254700001032": (1032, ONCE),
    "254700002001": (2001, ONCE),
    "254700001037": (1037, ONCE),
    "254700001019": (1019, ONCE),
    "254700009001": (0, LOST),
    "254700009002": (0, TWICE),
    "254700009030": (0, LATE),
}

#: The table printed by ``kibanda sim mpesa`` and copied into docs/emulators.md.
TEST_NUMBER_TABLE = """\
| phone | outcome |
|---|---|
| 254708374149 and any number not below | success |
| 254700000001 | insufficient funds (ResultCode 1) |
| 254700001032 | cancelled by user (1032) |
| 254700002001 | wrong PIN (2001) |
| 254700001037 | phone unreachable (1037) |
| 254700001019 | transaction expired (1019) |
| 254700009001 | success, callback lost (query still answers success) |
| 254700009002 | success, callback sent twice |
| 254700009030 | success, callback late_callback_delay (30 s) late |"""

#: Same phone and amount again within this many seconds ends with ResultCode 17.
DUPLICATE_WINDOW = 120
MAX_AMOUNT = 250000

#: fail_next kinds -> (HTTP status, errorCode, errorMessage).
FAULTS: dict[str, tuple[int, str, str]] = {
    "busy": (500, "500.003.02", "System is busy"),
    "spike": (500, "500.003.02", "Spike Arrest Violation"),
    "quota": (500, "500.003.03", "Quota Violation"),
    "internal": (500, "500.003.1001", "Internal Server Error"),
    "locked": (500, "500.001.1001", "Unable to lock subscriber, a transaction is already "
                                    "in process for the current subscriber"),
    "merchant": (500, "500.001.1001", "Merchant does not exist"),
    "credentials": (500, "500.001.1001", "Wrong credentials"),
    "token": (404, "404.001.03", "Invalid Access Token"),
    "apiproduct": (401, "", "Invalid API call as no apiproduct match found"),
    # "drop": the push is taken, then the connection closes with no answer.
    "drop": (0, "", ""),
}

_PHONE = re.compile(r"^254(7|1)\d{8}$")
_SHORTCODE = re.compile(r"^\d{5,7}$")
_TIMESTAMP = re.compile(r"^\d{14}$")
_URL = re.compile(r"^https?://[^\s/]+\S*$")


class Refusal(Exception):
    """A request Daraja answers with an error body."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_request(field: str) -> Refusal:
    """Daraja's answer to an invalid field."""
    return Refusal(400, "400.002.02", f"Bad Request - Invalid {field}")


def error_body(code: str, message: str, request_id: str | None = None) -> dict:
    """The documented error shape (the API gateway's own refusals use a ``fault``)."""
    if not code:
        return {"fault": {"faultstring": message,
                          "detail": {"errorcode": "keymanagement.service."
                                     "InvalidAPICallAsNoApiProductMatchFound"}}}
    return {"requestId": request_id or new_request_id(), "errorCode": code,
            "errorMessage": message}


def check_credentials(body: dict, shortcode: str, passkey: str, now: datetime,
                      window: float | None) -> None:
    """BusinessShortCode, Timestamp (format and freshness) and Password, as Daraja does."""
    code = str(body.get("BusinessShortCode", "")).strip()
    if not _SHORTCODE.match(code):
        raise bad_request("BusinessShortCode")
    timestamp = body.get("Timestamp")
    if not isinstance(timestamp, str) or not _TIMESTAMP.match(timestamp):
        raise bad_request("Timestamp")
    try:
        sent = datetime.strptime(timestamp, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    except ValueError as exc:
        raise bad_request("Timestamp") from exc
    if window is not None:
        # Naive local time on a server outside Kenya lands hours away from Nairobi's clock.
        if abs((now.replace(tzinfo=timezone.utc) - sent).total_seconds()) > window:
            raise bad_request("Timestamp")
    if code != shortcode:
        raise Refusal(500, "500.001.1001", "Merchant does not exist")
    expected = base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()
    if body.get("Password") != expected:
        raise Refusal(500, "500.001.1001", "Wrong credentials")


def check_push(body: dict) -> dict:
    """Validate the STK Push fields after the credentials; return the normalised values."""
    kind = body.get("TransactionType")
    if kind not in (PAYBILL_TYPE, TILL_TYPE):
        raise bad_request("TransactionType")
    amount = body.get("Amount")
    if isinstance(amount, bool) or not (
            isinstance(amount, int) or (isinstance(amount, str) and amount.isdigit())):
        raise bad_request("Amount")  # decimals are refused, even 1.0
    amount = int(amount)
    if amount < 1:
        raise bad_request("Amount")
    party_a, phone = str(body.get("PartyA", "")), str(body.get("PhoneNumber", ""))
    if not _PHONE.match(party_a):
        raise bad_request("PartyA")
    party_b = str(body.get("PartyB", "")).strip()
    if not _SHORTCODE.match(party_b):
        raise bad_request("PartyB")
    if not _PHONE.match(phone):
        raise bad_request("PhoneNumber")
    callback = body.get("CallBackURL")
    if not isinstance(callback, str) or not _URL.match(callback):
        raise bad_request("CallBackURL")
    reference = body.get("AccountReference")
    if not isinstance(reference, str) or not 1 <= len(reference) <= 12:
        raise bad_request("AccountReference")
    description = body.get("TransactionDesc")
    if not isinstance(description, str) or not 1 <= len(description) <= 13:
        raise bad_request("TransactionDesc")
    return {"transaction_type": kind, "amount": amount, "party_a": party_a,
            "party_b": party_b, "phone": phone, "callback_url": callback,
            "account_reference": reference, "transaction_desc": description}


def decide(push: dict, shortcode: str, till_number: str | None,
           earlier_same: bool) -> tuple[int, str]:
    """The ResultCode and callback behaviour a push will end with."""
    if push["transaction_type"] == PAYBILL_TYPE and push["party_b"] != shortcode:
        return 2028, ONCE
    if push["transaction_type"] == TILL_TYPE and (
            push["party_b"] == shortcode
            or (till_number is not None and push["party_b"] != till_number)):
        return 2028, ONCE
    if earlier_same:
        return 17, ONCE
    if push["amount"] > MAX_AMOUNT:
        return 3, ONCE
    return TEST_NUMBERS.get(push["phone"], (0, ONCE))


def outcome_of(result_code: int) -> str:
    """The outcome word of a ResultCode: "success", "cancelled", ... or "unknown"."""
    return OUTCOMES.get(result_code, UNKNOWN_OUTCOME)


def callback_body(txn: dict) -> dict:
    """The JSON Safaricom POSTs to CallBackURL, in the documented shape."""
    result = {"MerchantRequestID": txn["merchant_request_id"],
              "CheckoutRequestID": txn["checkout_request_id"],
              "ResultCode": txn["result_code"],
              "ResultDesc": RESULT_DESCS.get(txn["result_code"], "Failed")}
    if txn["result_code"] == 0:
        result["CallbackMetadata"] = {"Item": [
            {"Name": "Amount", "Value": float(txn["amount"])},
            {"Name": "MpesaReceiptNumber", "Value": txn["receipt"]},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": int(txn["transaction_date"])},
            {"Name": "PhoneNumber", "Value": int(txn["phone"])},
        ]}
    return {"Body": {"stkCallback": result}}


def query_body(txn: dict) -> dict:
    """The STK Query answer once the outcome is known (ResultCode as a string)."""
    return {"ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successfully",
            "MerchantRequestID": txn["merchant_request_id"],
            "CheckoutRequestID": txn["checkout_request_id"],
            "ResultCode": str(txn["result_code"]),
            "ResultDesc": RESULT_DESCS.get(txn["result_code"], "Failed")}


def new_receipt() -> str:
    """An M-Pesa receipt: 10 uppercase letters and digits, starting with a letter."""
    alphabet = string.ascii_uppercase + string.digits
    return secrets.choice(string.ascii_uppercase) + "".join(
        secrets.choice(alphabet) for _ in range(9))


def new_request_id() -> str:
    """A requestId / MerchantRequestID like ``2654-4b64-97ff-b827b542881d3130``."""
    return "-".join(secrets.token_hex(2) for _ in range(3)) + "-" + secrets.token_hex(8)


def new_checkout_id(now: datetime, serial: int) -> str:
    """A CheckoutRequestID: ``ws_CO_`` and digits (Nairobi time, then a serial)."""
    local = now.replace(tzinfo=timezone.utc).astimezone(NAIROBI)
    return f"ws_CO_{local:%d%m%Y%H%M%S}{serial:06d}{secrets.randbelow(10**6):06d}"
