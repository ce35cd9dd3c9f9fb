"""The Daraja emulator's own ResultCode table against the words the portal reports."""
import pytest

from portal.mpesa import RESULT_MESSAGES, failure_reason
from portal.sim.daraja_rules import OUTCOMES, RESULT_DESCS, TEST_NUMBERS, outcome_of


@pytest.mark.parametrize("code", sorted(set(OUTCOMES) | set(RESULT_MESSAGES)))
def test_emulator_outcome_words_are_the_portal_reasons(code):
    # Two tables written apart: they must still tell a tester the same story.
    expected = "success" if code == 0 else failure_reason(code)
    assert outcome_of(code) == expected


def test_codes_the_emulator_can_end_with_all_have_a_word():
    codes = {code for code, _delivery in TEST_NUMBERS.values()} | set(RESULT_DESCS)
    assert codes <= set(OUTCOMES)
    assert outcome_of(4242) == "unknown"
