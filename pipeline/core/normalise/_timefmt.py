"""RFC 3339 UTC formatting and naive-local-time conversion, cached for the hot path.

`datetime.strftime` and `zoneinfo` look-ups cost microseconds; receipts of one stream share days,
hours and often whole seconds, so the expensive parts are computed once per distinct value.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
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


def format_epoch_ms(millis: int) -> str:
    """RFC 3339 UTC for epoch milliseconds; the fraction appears only when non-zero."""
    seconds, ms = divmod(millis, 1000)
    text = _second_text(seconds)
    return f"{text[:-1]}.{ms:03d}Z" if ms else text


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or MalformedBody naming it (a bad `tz` header is the record's)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MalformedBody(f"unknown time zone {name!r}") from exc


@lru_cache(maxsize=8192)
def _local_hour(prefix: str, zone_name: str) -> int:
    """Epoch seconds of the local hour `YYYY-MM-DD HH` in `zone_name`.

    Every zone we serve changes its offset on an hour boundary, so the hour's offset is the
    offset of each second in it; receipts share hours, so this is computed rarely.
    """
    try:
        naive = datetime.strptime(prefix, "%Y-%m-%d %H")
    except ValueError as exc:
        raise MalformedBody(f"invalid time {prefix!r}") from exc
    offset = naive.replace(tzinfo=zone(zone_name)).utcoffset()
    assert offset is not None  # a ZoneInfo always answers
    days = naive.toordinal() - _EPOCH_ORDINAL
    return days * 86400 + naive.hour * 3600 - int(offset.total_seconds())


@lru_cache(maxsize=65536)
def local_to_utc(text: str, zone_name: str) -> str:
    """`YYYY-MM-DD HH:MM:SS` read in `zone_name`, as RFC 3339 UTC.

    Whitespace between date and time is tolerated (gateways wrap it); anything else is an error.
    Cached whole (receipts of a stream share seconds); a miss costs no date parsing either.
    """
    if len(text) != 19 or text[10] != " ":
        parts = text.split()
        if len(parts) != 2 or len(parts[0]) != 10 or len(parts[1]) != 8:
            raise MalformedBody(f"time not in 'YYYY-MM-DD HH:MM:SS' form: {text!r}")
        text = f"{parts[0]} {parts[1]}"
    minutes, seconds = text[14:16], text[17:19]
    if not (
        text[13] == text[16] == ":"
        and minutes.isascii()
        and minutes.isdigit()
        and seconds.isascii()
        and seconds.isdigit()
        and minutes < "60"
        and seconds < "60"
    ):
        raise MalformedBody(f"invalid time {text!r}")
    return format_epoch_s(_local_hour(text[:13], zone_name) + int(minutes) * 60 + int(seconds))


def epoch_text_to_utc(value: int | str) -> str:
    """Epoch seconds given as an int or a numeric string, as RFC 3339 UTC."""
    if isinstance(value, str):
        # isascii: str.isdigit accepts '²'; the length cap keeps int() far from its digit limit.
        if not (value.isascii() and value.isdigit() and len(value) <= 20):
            raise MalformedBody(f"epoch seconds not numeric: {value[:40]!r}")
        value = int(value)
    return format_epoch_s(value)


@lru_cache(maxsize=65536)
def provider_time(value: int | str | None, zone: str) -> tuple[str | None, str | None, str | None]:
    """(occurred_at, occurred_at_raw, time_zone) of a provider time that is either epoch seconds
    (an int or a digit string, UTC) or a naive `YYYY-MM-DD HH:MM:SS` read in `zone`.

    Cached whole: at volume, many receipts of a stream share their second.
    """
    if value is None or value == "":
        return None, None, None
    if isinstance(value, int):
        return format_epoch_s(value), str(value), None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return epoch_text_to_utc(text), value, None
    return local_to_utc(value, zone), value, zone
