from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.normalise import epoch_text_to_utc, format_epoch_ms, format_epoch_s, local_to_utc
from pipeline.errors import MalformedBody


def test_epoch_seconds_and_millis() -> None:
    assert format_epoch_s(1395068121) == "2014-03-17T14:55:21Z"
    assert format_epoch_ms(1395068121000) == "2014-03-17T14:55:21Z"
    assert format_epoch_ms(1395068121007) == "2014-03-17T14:55:21.007Z"
    assert epoch_text_to_utc("1517989111") == "2018-02-07T07:38:31Z"


@given(st.integers(min_value=0, max_value=253_402_300_799))
def test_epoch_matches_datetime(seconds: int) -> None:
    expected = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert format_epoch_s(seconds) == expected


@pytest.mark.parametrize("bad", [-1, 10**30, 253_402_300_800])
def test_absurd_epochs_are_malformed(bad: int) -> None:
    with pytest.raises(MalformedBody):
        format_epoch_s(bad)


@pytest.mark.parametrize("bad", ["1e9", "", "12a", "-5", "²", "9" * 5000])
def test_non_numeric_epoch_text(bad: str) -> None:
    with pytest.raises(MalformedBody):
        epoch_text_to_utc(bad)


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2014-03-17 22:55:21", "Asia/Shanghai", "2014-03-17T14:55:21Z"),
        ("2024-07-01 12:00:00", "Europe/Paris", "2024-07-01T10:00:00Z"),  # CEST
        ("2024-01-01 12:00:00", "Europe/Paris", "2024-01-01T11:00:00Z"),  # CET
        ("2016-07-12 01:46:02", "UTC", "2016-07-12T01:46:02Z"),
        ("2016-07-12\n\n01:46:02", "UTC", "2016-07-12T01:46:02Z"),
    ],
)
def test_naive_local_times(text: str, zone: str, expected: str) -> None:
    assert local_to_utc(text, zone) == expected


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1)),
    st.sampled_from(["Asia/Shanghai", "Europe/Paris", "America/New_York", "UTC"]),
)
def test_naive_matches_zoneinfo(naive: datetime, zone: str) -> None:
    naive = naive.replace(microsecond=0)
    text = naive.strftime("%Y-%m-%d %H:%M:%S")
    aware = naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert local_to_utc(text, zone) == aware.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("bad", ["2014-03-17", "2014-13-17 22:55:21", "yesterday at noon", ""])
def test_bad_times_are_malformed(bad: str) -> None:
    with pytest.raises(MalformedBody):
        local_to_utc(bad, "UTC")


def test_unknown_zone_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="Mars/Olympus"):
        local_to_utc("2014-03-17 22:55:21", "Mars/Olympus")
