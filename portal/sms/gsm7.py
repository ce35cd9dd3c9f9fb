"""The GSM 03.38 7-bit alphabet: what fits in 160 characters per SMS, and what costs two.

A single character outside it (a curly quote, an emoji) turns the whole message into
UCS-2, 70 characters per part: every text Kibanda sends stays inside it.
"""
from __future__ import annotations

BASIC = ("@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
         "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"
         " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
         "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
         "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0")
#: Characters sent as an escape plus one: they count twice.
EXTENDED = "^{}\\[~]|\u20ac\f"
SINGLE_PART, MULTI_PART = 160, 153


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 alphabet (or its extension)."""
    return all(ch in BASIC or ch in EXTENDED for ch in text)


def septets(text: str) -> int:
    """How many 7-bit characters ``text`` takes (extension characters count two)."""
    return sum(2 if ch in EXTENDED else 1 for ch in text)


def parts(text: str) -> int:
    """How many SMS parts ``text`` needs (GSM-7 only; UCS-2 is never sent)."""
    length = septets(text)
    return 1 if length <= SINGLE_PART else -(-length // MULTI_PART)


def to_gsm7(text: str) -> str:
    """``text`` with look-alikes made plain (curly quotes, dashes) and anything else
    outside GSM-7 replaced by '?': a customer's package name never makes a receipt UCS-2."""
    plain = (text.replace("\u2018", "'").replace("\u2019", "'").replace("\u201c", '"')
             .replace("\u201d", '"').replace("\u2013", "-").replace("\u2014", "-")
             .replace("\u2026", "..."))
    return "".join(ch if ch in BASIC or ch in EXTENDED else "?" for ch in plain)
