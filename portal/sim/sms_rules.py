"""Africa's Talking SMS as the emulator knows it: result tables, numbers, length and cost.

Written from the reference sheet (shared/reference/sms.md) and the answers quoted in
Africa's Talking's public SDK issues, independently of Kibanda's SMS client: its own
GSM-7 table, its own status tables, its own number rules.

- ``STATUS_NAMES``: every per-recipient ``statusCode`` and its ``status`` word;
- ``kenyan_mobile``: a recipient as the emulator accepts it (``+2547XXXXXXXX`` or
  ``+2541XXXXXXXX``), ``network_code`` the MCC+MNC its delivery report names;
- ``parts``: how many SMS a text takes (GSM-7 160 / 153, else UCS-2 70 / 67);
- ``cost_text`` / ``summary``: the money words of the answer ("KES 0.8000",
  "Sent to 1/2 Total Cost: KES 0.8000").
"""
from __future__ import annotations

import math
import re
import secrets
from decimal import Decimal

#: What one SMS part costs (KES), as the brief fixes it for the emulator.
PRICE_PER_PART = Decimal("0.80")

SENT, QUEUED = 101, 102
#: statusCode -> status, as Africa's Talking answers them per recipient.
STATUS_NAMES = {
    100: "Processed", 101: "Success", 102: "Queued",
    401: "RiskHold", 402: "InvalidSenderId", 403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType", 405: "InsufficientBalance", 406: "UserInBlacklist",
    407: "CouldNotRoute", 409: "DoNotDisturbRejection",
    500: "InternalServerError", 501: "GatewayError", 502: "RejectedByGateway",
}
#: The statusCodes a recipient can be refused with (``SmsSim.refuse``).
REFUSALS = tuple(code for code in STATUS_NAMES if code >= 400)
#: A number ending in one of these gets that statusCode without any control call.
SUFFIX_REFUSALS = (401, 402, 403, 404, 405, 406, 407, 409)
INVALID_SENDER_ID, INVALID_PHONE, INSUFFICIENT_BALANCE = 402, 403, 405
#: How an unregistered ``from`` may be answered (``SmsSim.invalid_sender_answer``).
INVALID_SENDER_ANSWERS = ("recipients", "message")

#: The delivery-report ``status`` words and the ``failureReason`` words.
DELIVERY_STATUSES = ("Sent", "Submitted", "Buffered", "Rejected", "Success", "Failed",
                     "AbsentSubscriber")
FAILURE_REASONS = ("InsufficientCredit", "InvalidLinkId", "UserIsInactive", "UserInBlackList",
                   "UserAccountSuspended", "NotNetworkSubscriber",
                   "UserNotSubscribedToProduct", "UserDoesNotExist", "DeliveryFailure")

#: Plain-text answers to requests refused before any recipient is looked at.
AUTH_FAILED = "The supplied authentication is invalid"
SAFARICOM, AIRTEL, TELKOM = "63902", "63903", "63907"

_MOBILE = re.compile(r"^\+254([71]\d{8})$")
# National number prefixes (after 0) by network; whatever is not Airtel or Telkom is
# treated as Safaricom, the network of most numbers the demo and the tests use.
_AIRTEL = re.compile(r"^(73\d|75[0-6]|762|78\d|10[0-2])")
_TELKOM = re.compile(r"^77\d")

# GSM 03.38 default alphabet (one septet each) and its extension table (two septets).
_GSM_BASIC = set(
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0")
_GSM_EXTENSION = set("\f^{}\\[~]|\u20ac")


def kenyan_mobile(number: str) -> str | None:
    """``number`` when it is a Kenyan mobile in international form, else None."""
    return number if _MOBILE.match(number) else None


def network_code(number: str) -> str:
    """The network (MCC+MNC) a delivery report names for ``number`` (+254...)."""
    national = number[4:]
    if _AIRTEL.match(national):
        return AIRTEL
    if _TELKOM.match(national):
        return TELKOM
    return SAFARICOM


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 alphabet or its extension."""
    return all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text)


def parts(text: str) -> int:
    """How many SMS ``text`` is sent as (an empty text is still one)."""
    if is_gsm7(text):
        septets = sum(2 if c in _GSM_EXTENSION else 1 for c in text)
        single, multi = 160, 153
    else:
        septets = len(text.encode("utf-16-le")) // 2  # UCS-2 code units
        single, multi = 70, 67
    return 1 if septets <= single else math.ceil(septets / multi)


def cost_of(part_count: int) -> Decimal:
    """What ``part_count`` parts cost (KES)."""
    return PRICE_PER_PART * part_count


def cost_text(amount: Decimal) -> str:
    """A cost as the answer writes it: ``KES 0.8000``."""
    return f"KES {amount:.4f}"


def summary(sent: int, total: int, cost: Decimal) -> str:
    """The answer's ``Message``: ``Sent to 1/1 Total Cost: KES 0.8000`` (nothing sent: 0)."""
    return f"Sent to {sent}/{total} Total Cost: {cost_text(cost) if sent else '0'}"


def suffix_refusal(number: str) -> int | None:
    """The statusCode a test number asks for by its last three digits, or None."""
    tail = number[-3:]
    return int(tail) if tail.isdigit() and int(tail) in SUFFIX_REFUSALS else None


def new_message_id() -> str:
    """A messageId shaped like Africa's Talking's: ``ATXid_`` and 32 hex digits."""
    return "ATXid_" + secrets.token_hex(16)


def missing_field(name: str) -> str:
    """The plain-text answer (400) to a request without a required form field."""
    return f"Request is missing required form field '{name}'"
