"""Kenyan mobile numbers: as people type them, as Daraja wants them, as pages show them."""
from __future__ import annotations

import re

from .errors import InvalidPhone

# Separators people type or paste (including non-breaking spaces): never significant.
_SEPARATORS = re.compile(r"[\s\-.()]")
# [0-9], not \d: \d also matches Arabic-Indic and other digits M-Pesa would refuse.
# Accepted shapes: 07XX / 01XX, 7XX / 1XX, 2547XX / +2547XX / 002547XX, and the
# "+254 (0)712 ..." style with the trunk zero kept.
_KENYAN_MOBILE = re.compile(r"^(?:(?:\+|00)?254)?0?([71][0-9]{8})$")
_MAX_INPUT = 40


def normalise_phone(text: str) -> str:
    """Return ``2547XXXXXXXX`` / ``2541XXXXXXXX`` for a typed number, else raise InvalidPhone."""
    if not isinstance(text, str):
        raise InvalidPhone(f"phone number must be text, not {type(text).__name__}")
    if len(text) > _MAX_INPUT:
        raise InvalidPhone("phone number too long")
    compact = _SEPARATORS.sub("", text)
    match = _KENYAN_MOBILE.match(compact)
    if not match:
        raise InvalidPhone(f"not a Kenyan mobile number: {text!r}")
    return "254" + match.group(1)


def is_valid_phone(text: str) -> bool:
    """True when ``text`` normalises to a Kenyan mobile number."""
    try:
        normalise_phone(text)
    except InvalidPhone:
        return False
    return True


def display_phone(phone: str, style: str = "plain") -> str:
    """A number as Kenyans write it: ``plain`` 0712345678, ``spaced`` 0712 345 678, or
    ``masked`` 0712***678 (for a page a stranger may see). Text that is not a Kenyan
    mobile number is shown as it is (masked: ``***``)."""
    try:
        local = "0" + normalise_phone(phone or "")[3:]
    except InvalidPhone:
        return "***" if style == "masked" else (phone or "")
    if style == "spaced":
        return f"{local[:4]} {local[4:7]} {local[7:]}"
    if style == "masked":
        return local[:4] + "***" + local[-3:]
    return local


def dial_uri(phone: str) -> str:
    """A ``tel:`` target for a number (``+254712345678``); odd text keeps only + and digits."""
    try:
        return "+" + normalise_phone(phone or "")
    except InvalidPhone:
        return re.sub(r"[^0-9+]", "", phone or "")
