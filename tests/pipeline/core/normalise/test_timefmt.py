from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.normalise import format_epoch_ms, format_epoch_s
from pipeline.errors import MalformedBody


def test_epoch_seconds_and_millis() -> None:
    assert format_epoch_s(1395068121) == "2014-03-17T14:55:21Z"
    assert format_epoch_ms(1395068121000) == "2014-03-17T14:55:21Z"
    assert format_epoch_ms(1395068121007) == "2014-03-17T14:55:21.007Z"


@given(st.integers(min_value=0, max_value=253_402_300_799))
def test_epoch_matches_datetime(seconds: int) -> None:
    expected = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert format_epoch_s(seconds) == expected


@pytest.mark.parametrize("bad", [-1, 10**30, 253_402_300_800])
def test_absurd_epochs_are_malformed(bad: int) -> None:
    with pytest.raises(MalformedBody):
        format_epoch_s(bad)
