"""Daraja's STK callback bodies, decoded and checked (every documented shape).

A callback is evidence, not proof: this module only says what the body claims. What is
done with it (settle, review, refuse) is the ledger's business.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import MalformedCallback

#: Daraja's callbacks are about a kilobyte; anything much bigger is not one.
MAX_BODY_BYTES = 32 * 1024
#: Far above any M-Pesa payment (KES 250,000 at most), far below SQLite's 64-bit integers.
MAX_AMOUNT = 10**9
#: Daraja's ResultCodes are small numbers (0, 1, 17, 1032, 2001 ...).
MAX_RESULT_CODE = 10**9
#: A phone number has at most 15 digits (E.164); room for a masked or formatted one.
MAX_PHONE_CHARS = 20


@dataclass(frozen=True)
class CallbackResult:
    """An STK callback, decoded; ``amount`` is whole KES rounded down."""

    checkout_request_id: str
    merchant_request_id: str
    result_code: int
    result_desc: str
    amount: int | None = None
    receipt: str | None = None
    phone: str | None = None
    transaction_date: str | None = None
    balance: str | None = None
    #: The Amount exactly as sent (e.g. "1.00"), for the review log.
    amount_text: str | None = None

    @property
    def success(self) -> bool:
        """True when M-Pesa says the customer paid (ResultCode 0)."""
        return self.result_code == 0


def parse_callback(body: bytes | str | dict) -> CallbackResult:
    """Decode an STK callback body; raises MalformedCallback when it is not one.

    Hostile bodies (oversize, nested thousands deep, numbers with hundreds of digits,
    NaN or Infinity) are malformed too: nothing here may raise anything else.
    """
    if isinstance(body, (bytes, bytearray, str)) and len(body) > MAX_BODY_BYTES:
        raise MalformedCallback(f"callback body of {len(body)} bytes is too big")
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedCallback("callback body is not UTF-8") from exc
    if isinstance(body, str):
        try:
            # Decimal keeps the Amount exactly as sent ("1.00"), never a binary float.
            body = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError) as exc:
            raise MalformedCallback(f"callback body is not JSON: {body[:200]!r}") from exc
    if not isinstance(body, dict):
        raise MalformedCallback("callback body is not a JSON object")
    callback = (body.get("Body") or {}).get("stkCallback") if isinstance(
        body.get("Body"), dict) else None
    if not isinstance(callback, dict):
        raise MalformedCallback("callback has no Body.stkCallback")
    checkout = callback.get("CheckoutRequestID")
    if not isinstance(checkout, str) or not checkout.strip():
        raise MalformedCallback("callback has no CheckoutRequestID")
    raw_code = str(callback.get("ResultCode")).strip()[:40]
    try:
        code = int(raw_code) if len(raw_code) < 20 else None
    except ValueError:
        code = None
    if code is None or abs(code) > MAX_RESULT_CODE:
        raise MalformedCallback(f"callback ResultCode {raw_code!r} is not a result code")
    items = _metadata_items(callback.get("CallbackMetadata"))
    amount_text = _text(items.get("Amount"))
    phone = _text(items.get("PhoneNumber"))
    if phone is not None and len(phone) > MAX_PHONE_CHARS:
        raise MalformedCallback(f"callback PhoneNumber of {len(phone)} characters")
    return CallbackResult(
        checkout_request_id=checkout.strip(),
        merchant_request_id=str(callback.get("MerchantRequestID") or ""),
        result_code=code,
        result_desc=str(callback.get("ResultDesc") or ""),
        amount=_whole_kes(amount_text),
        receipt=_text(items.get("MpesaReceiptNumber")),
        phone=phone,
        transaction_date=_text(items.get("TransactionDate")),
        balance=_text(items.get("Balance")),
        amount_text=amount_text,
    )


_MISSING = object()


def _metadata_items(metadata: Any) -> dict[str, Any]:
    """CallbackMetadata.Item as {Name: Value}; items without a Value are left out."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise MalformedCallback("CallbackMetadata is not an object")
    raw = metadata.get("Item") or []
    if isinstance(raw, dict):  # a single item, seen from some gateways
        raw = [raw]
    if not isinstance(raw, list):
        raise MalformedCallback("CallbackMetadata.Item is not a list")
    items = {}
    for item in raw:
        if not isinstance(item, dict) or "Name" not in item:
            raise MalformedCallback(f"CallbackMetadata item without a Name: {item!r}")
        value = item.get("Value", _MISSING)
        if value is not _MISSING and value is not None:
            items[str(item["Name"])] = value
    return items


def _text(value: Any) -> str | None:
    """A metadata value as text; big whole numbers lose a float's ".0" (254708374149.0)."""
    if value is None:
        return None
    if isinstance(value, (float, Decimal)) and not isinstance(value, bool):
        number = Decimal(str(value))
        if number.is_finite() and abs(number.adjusted()) > 30:
            return str(number)  # 1e999: never turned into a 1,000-digit integer
        if number.is_finite() and number == number.to_integral_value() and abs(number) >= 10**6:
            return str(int(number))  # phone numbers and dates sent as floats
        return str(number)
    text = str(value).strip()
    return text or None


def _whole_kes(amount_text: str | None) -> int | None:
    """Whole KES, rounded down: a short payment must never be rounded up to the price."""
    if amount_text is None:
        return None
    try:
        value = Decimal(amount_text)
    except InvalidOperation as exc:
        raise MalformedCallback(f"callback Amount {amount_text!r} is not a number") from exc
    if not value.is_finite():
        raise MalformedCallback(f"callback Amount {amount_text!r} is not a number")
    if not 0 <= value <= MAX_AMOUNT:
        raise MalformedCallback(f"callback Amount {amount_text[:40]!r} is not a payment")
    return int(value.to_integral_value(rounding="ROUND_FLOOR"))
