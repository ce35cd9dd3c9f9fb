"""Phone numbers as Kenyan customers type them, normalised for Daraja."""
from __future__ import annotations

import pytest

from portal.errors import ValidationError
from portal.mpesa import InvalidPhone, normalise_phone
from portal.phone import is_valid_phone


@pytest.mark.parametrize("typed, expected", [
    ("0712 345 678", "254712345678"),
    ("0712-345-678", "254712345678"),
    ("+254 712 345 678", "254712345678"),
    ("254712345678", "254712345678"),
    ("712345678", "254712345678"),
    ("0110 123 456", "254110123456"),
    ("(0712) 345678", "254712345678"),
    ("0712.345.678", "254712345678"),
    ("  0712345678 ", "254712345678"),
    ("+254 (0)712 345 678", "254712345678"),
    ("00254712345678", "254712345678"),
    ("110123456", "254110123456"),
    ("0712\u00a0345\u00a0678", "254712345678"),  # pasted with non-breaking spaces
])
def test_accepted_numbers_become_2547_or_2541(typed, expected):
    assert normalise_phone(typed) == expected
    assert is_valid_phone(typed)


@pytest.mark.parametrize("typed", [
    "0812345678",          # not a mobile prefix
    "07123",               # too short
    "2547123456789",       # one digit too many
    "hello",
    "",
    "+1 202 555 0100",     # not Kenyan
    "0712 345 67a",
    "07١٢345678",          # Arabic-Indic digits: M-Pesa would refuse them
    "0712345678 0712345678",
    "+254 812 345 678",
    "0712/345/678",
    "0" * 200,
])
def test_refused_numbers_raise_a_phone_validation_error(typed):
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(typed)
    error = caught.value
    assert isinstance(error, ValidationError) and error.field == "phone"
    # The customer is told what a good number looks like, in both languages.
    assert "0712 345 678" in error.message_for("en")
    assert "0712 345 678" in error.message_for("sw")
    assert not is_valid_phone(typed)


def test_non_text_is_refused():
    with pytest.raises(InvalidPhone):
        normalise_phone(712345678)  # type: ignore[arg-type]
