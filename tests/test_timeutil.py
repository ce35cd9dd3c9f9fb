"""Durations as RouterOS writes them, and Nairobi timestamps as Daraja wants them."""
from __future__ import annotations

import pytest

from portal.timeutil import format_duration, nairobi_timestamp, parse_duration


def test_durations_and_nairobi_timestamp():
    from datetime import datetime
    assert parse_duration("1d2h") == 93600 and parse_duration("00:30:00") == 1800
    assert parse_duration("3600") == 3600 and format_duration(698215) == "1w1d1h56m55s"
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert nairobi_timestamp(datetime(2021, 6, 28, 6, 24, 8)) == "20210628092408"
