"""RFC 3339 UTC formatting and time zones, cached for the hot path (the time parser is `_times`).

`datetime.strftime` and `zoneinfo` look-ups cost microseconds; receipts of one stream share days,
hours and often whole seconds, so the expensive parts are computed once per distinct value.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...errors import MalformedBody

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Year 9999-12-31T23:59:59: anything later cannot be an RFC 3339 date.
_MAX_EPOCH_S = 253_402_300_799


@lru_cache(maxsize=8192)
def _day_prefix(days: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + days).isoformat() + "T"


def format_epoch_s(seconds: int) -> str:
    """`2014-03-17T14:55:21Z` for epoch seconds (UTC)."""
    if not 0 <= seconds <= _MAX_EPOCH_S:
        raise MalformedBody(f"epoch seconds out of range: {seconds}")
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{_day_prefix(days)}{hours:02d}:{minutes:02d}:{secs:02d}Z"


# Records of a stream share their seconds: a record's time (`observed_at`) is cached by second.
_second_text = lru_cache(maxsize=4096)(format_epoch_s)
#: `.000Z` to `.999Z`: a table look-up, not an integer format per call (this runs per record).
_FRACTION: Final = tuple(f".{ms:03d}Z" for ms in range(1000))


def format_epoch_ms(millis: int) -> str:
    """RFC 3339 UTC for epoch milliseconds; the fraction appears only when non-zero."""
    seconds, ms = divmod(millis, 1000)
    text = _second_text(seconds)
    return text[:-1] + _FRACTION[ms] if ms else text


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or MalformedBody naming it (a bad `tz` header is the record's)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MalformedBody(f"unknown time zone {name!r}") from exc
