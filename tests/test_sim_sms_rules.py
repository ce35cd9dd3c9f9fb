"""The SMS emulator's own tables: GSM-7 or UCS-2, parts, cost words, numbers and networks."""
from __future__ import annotations

from decimal import Decimal

import pytest

from portal.sim.sms_rules import (
    STATUS_NAMES, cost_of, cost_text, is_gsm7, kenyan_mobile, network_code, parts,
    suffix_refusal, summary,
)


@pytest.mark.parametrize("text, gsm7", [
    ("Asante! Msimbo wako ni K7P2Q, saa 1.", True),
    ("@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\u00d8\u00f8\u00c5\u00e5\u00c6\u00e6"
     "\u00df\u00c9\u00c4\u00d6\u00d1\u00dc\u00a7\u00bf\u00e4\u00f6\u00f1\u00fc\u00e0\u00a1", True),
    ("{[~]}|^\\\u20ac", True),
    ("Don\u2019t", False),          # a curly apostrophe
    ("\u201cquoted\u201d", False),
    ("Karibu \U0001F600", False),   # an emoji
    ("\u00e7a", False),             # only the capital C cedilla is GSM-7
    ("`", False),
])
def test_gsm7_alphabet(text, gsm7):
    assert is_gsm7(text) is gsm7


@pytest.mark.parametrize("text, count", [
    ("", 1), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("\u20ac" * 80, 1), ("\u20ac" * 80 + "a", 2),       # two septets each
    ("\u2019" * 70, 1), ("\u2019" * 71, 2), ("\u2019" * 134, 2), ("\u2019" * 135, 3),
    ("\U0001F600" * 35, 1), ("\U0001F600" * 36, 2),     # an emoji is two UCS-2 units
])
def test_parts(text, count):
    assert parts(text) == count


def test_money_words():
    assert cost_of(3) == Decimal("2.40")
    assert cost_text(cost_of(1)) == "KES 0.8000"
    assert summary(2, 3, cost_of(2)) == "Sent to 2/3 Total Cost: KES 1.6000"
    assert summary(0, 1, Decimal("0")) == "Sent to 0/1 Total Cost: 0"


@pytest.mark.parametrize("number, network", [
    ("+254711000001", "63902"), ("+254722000001", "63902"), ("+254110000001", "63902"),
    ("+254733000001", "63903"), ("+254750000001", "63903"), ("+254785000001", "63903"),
    ("+254100000001", "63903"), ("+254770000001", "63907"),
])
def test_network_codes(number, network):
    assert kenyan_mobile(number) == number
    assert network_code(number) == network


def test_suffix_refusals_are_refusal_codes():
    assert suffix_refusal("+254711000406") == 406
    assert suffix_refusal("+254711000408") is None and suffix_refusal("+254711000101") is None
    assert all(STATUS_NAMES[code] for code in (401, 402, 403, 404, 405, 406, 407, 409))
