"""Daraja's result codes: a reason and a message in both languages for each."""
from __future__ import annotations

import pytest

from portal.mpesa import RESULT_MESSAGES, failure_reason, owner_reason, result_message
from portal.mpesa.results import OWNER_REASONS


@pytest.mark.parametrize("code, reason", [
    (1, "insufficient_funds"), (1032, "cancelled"), (2001, "wrong_pin"), (1037, "unreachable"),
    (1019, "expired"), (17, "limit"), (1025, "busy"), (9999, "busy"), (2, "limit"),
    (3, "limit"), (4, "limit"), (8, "limit"), (2028, "operator"), (8006, "operator"),
    ("1032", "cancelled"), (424242, "unknown"), (None, "unknown"),
])
def test_every_result_code_has_a_reason_and_both_languages(code, reason):
    assert failure_reason(code) == reason
    english, swahili = result_message(code, "en"), result_message(code, "sw")
    assert english and swahili and english != swahili


def test_result_messages_table_shape():
    assert RESULT_MESSAGES[1032][2] == "cancelled"
    assert "PIN" in result_message(2001, "en") and "PIN" in result_message(2001, "sw")
    for code in (2028, 8006):
        assert "staff" in result_message(code, "en")


def test_every_result_code_has_plain_words_for_the_owner():
    assert set(OWNER_REASONS) == set(RESULT_MESSAGES)
    assert owner_reason("1037", "DS timeout user cannot be reached") == \
        "The customer's phone could not be reached (switched off or no network)."
    assert owner_reason(None, "The initiator information is invalid.") == \
        "The customer entered a wrong M-Pesa PIN."
    assert owner_reason(4242, "Something new") == "M-Pesa did not complete the payment."
