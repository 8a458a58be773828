"""One parser for every time field of every provider (docs/contract.md, "Times").

- naive local `YYYY-MM-DD HH:MM:SS` (whitespace or `T` between date and time, optional
  fraction): read in the given zone; a wall time that occurs twice is its first occurrence, one
  that does not exist is read with the offset in force before the gap (RFC 5545 §3.3.5);
- with `Z`, `±HH:MM` or `±HHMM`: converted to UTC;
- an epoch (a JSON number, or digits with an optional fraction): seconds below 10^11,
  milliseconds from there up, fractions kept to the millisecond (truncated); before 2000 (0,
  placeholders, negatives) it is no time;
- anything else: no time, the raw text kept, counted in `UNPARSED_TIMES`. A bad time never costs
  a receipt.

The result is `(time, raw, time_zone)`: RFC 3339 UTC (milliseconds only when non-zero), the
value verbatim as text, and the zone when a naive time was read. Results are cached whole:
receipts of one stream share their seconds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Final

from ._identity import key_part
from ._timefmt import format_epoch_ms, zone

TimeValue = int | float | str
TimeFields = tuple[str | None, str | None, str | None]

#: Times that could not be read, by provider (the event carries a null time and the raw text).
UNPARSED_TIMES: Final[Counter[str]] = Counter()

_NO_TIME: Final[TimeFields] = (None, None, None)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
#: 2000-01-01T00:00:00Z: an epoch before it is a placeholder, not a time.
_Y2K_MS: Final = 946_684_800_000
#: Epoch values from here up are milliseconds.
_MS_FROM: Final = 10**11
#: 9999-12-31T23:59:59.999Z: anything later cannot be an RFC 3339 time.
_MAX_MS: Final = 253_402_300_800_000 - 1

_STAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[Tt]|\s+)(\d\d):(\d\d):(\d\d)(?:[.,](\d+))?"
    r"\s*(?:([Zz])|([+-])(\d\d):?(\d\d))?",
    re.ASCII,
)
_EPOCH = re.compile(r"(-?)(\d*)(?:\.(\d*))?", re.ASCII)
#: Date and time of a key time, to be joined by one space.
_KEY_TIME = re.compile(r"(\d{4}-\d\d-\d\d)(?:\s+|[Tt])(\d\d:\d\d:\d\d)", re.ASCII)


class _Unparsed(Exception):
    """Raised by the parser, counted by `parse_time` (an unparsed time is not cached)."""


#: Results by value, zone and the value's type (1, 1.0 and True have different raw texts):
#: receipts of one stream share their seconds. A dict, not `lru_cache`: a hit here is a tuple
#: and one dict look-up, cheaper than an lru_cache hit behind a call; cleared when full.
_CACHE: Final[dict[tuple[TimeValue, str, type], TimeFields]] = {}
_CACHE_MAX: Final = 65536


def parse_time(value: TimeValue | None, zone_name: str, provider: str) -> TimeFields:
    """`(time, raw, time_zone)` of a provider time field; see the module docstring."""
    if value is None:
        return _NO_TIME
    key = (value, zone_name, type(value))
    found = _CACHE.get(key)
    if found is not None:
        return found
    try:
        found = _parse(value, zone_name)
    except _Unparsed:  # not cached: each is counted
        UNPARSED_TIMES[provider] += 1
        return None, value if type(value) is str else repr(value), None
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = found
    return found


def _parse(value: TimeValue, zone_name: str) -> TimeFields:
    if type(value) is str:
        text = value.strip()
        if not text:
            return _NO_TIME  # empty means absent
        if text.isascii() and text.isdigit() and len(text) <= 20:
            return _epoch(int(text), "", value)
        stamp = _STAMP.fullmatch(text)
        if stamp is not None:
            return _stamp(stamp, zone_name, value)
        epoch = _EPOCH.fullmatch(text)
        if epoch is not None and (epoch[2] or epoch[3]) and len(epoch[2]) <= 20:
            whole = int(epoch[2] or "0")
            return _epoch(-whole if epoch[1] else whole, epoch[3] or "", value)
        raise _Unparsed
    if type(value) is int:
        return _epoch(value, "", str(value))
    if type(value) is float and math.isfinite(value):
        raw = repr(value)
        digits, _, fraction = format(Decimal(raw), "f").partition(".")
        if len(digits) > 21:
            raise _Unparsed
        return _epoch(int(digits), fraction, raw)
    raise _Unparsed


def _epoch(whole: int, fraction: str, raw: str) -> TimeFields:
    """An epoch of `whole` seconds or milliseconds and the fraction's digits."""
    if whole < 0:
        return None, raw, None
    millis = whole * 1000 + int((fraction + "000")[:3]) if whole < _MS_FROM else whole
    if millis < _Y2K_MS:
        return None, raw, None  # a placeholder (0, 6, ...), not a time
    if millis > _MAX_MS:
        raise _Unparsed
    return format_epoch_ms(millis), raw, None


def _stamp(match: re.Match[str], zone_name: str, raw: str) -> TimeFields:
    year, month, day, hour, minute, second, fraction, z, sign, off_h, off_m = match.groups()
    try:
        day_number = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise _Unparsed from None
    h, m, s = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or s > 59:
        raise _Unparsed
    millis = int(((fraction or "") + "000")[:3])
    if z is not None or sign is not None:
        offset = 0
        if sign is not None:
            oh, om = int(off_h), int(off_m)
            if oh > 23 or om > 59:
                raise _Unparsed
            offset = (oh * 3600 + om * 60) * (-1 if sign == "-" else 1)
        seconds = day_number * 86400 + h * 3600 + m * 60 + s - offset
        time_zone = None
    else:
        seconds = _local_seconds(day_number, h, m, s, zone_name)
        time_zone = zone_name
    total = seconds * 1000 + millis
    if not 0 <= total <= _MAX_MS:
        raise _Unparsed
    return format_epoch_ms(total), raw, time_zone


def _local_seconds(day_number: int, hour: int, minute: int, second: int, zone_name: str) -> int:
    """Epoch seconds of a wall time in `zone_name` (first occurrence; before a gap's offset)."""
    base, uniform = _local_hour(day_number, hour, zone_name)
    if uniform:
        return base + minute * 60 + second
    # An hour with an offset change inside it (Pacific/Chatham changes at :45): this second's
    # own offset. fold=0 is the first occurrence, and in a gap the offset before it (PEP 495).
    naive = datetime.fromordinal(day_number + _EPOCH_ORDINAL).replace(
        hour=hour, minute=minute, second=second
    )
    offset = naive.replace(tzinfo=zone(zone_name)).utcoffset()
    assert offset is not None  # a ZoneInfo always answers
    return day_number * 86400 + hour * 3600 + minute * 60 + second - int(offset.total_seconds())


@lru_cache(maxsize=8192)
def _local_hour(day_number: int, hour: int, zone_name: str) -> tuple[int, bool]:
    """(epoch seconds of the wall hour's start, whether one offset holds for all of it)."""
    tz = zone(zone_name)
    start = datetime.fromordinal(day_number + _EPOCH_ORDINAL).replace(hour=hour, tzinfo=tz)
    end = start.replace(minute=59, second=59)
    offsets = {
        start.utcoffset(),
        end.utcoffset(),
        start.replace(fold=1).utcoffset(),
        end.replace(fold=1).utcoffset(),
    }
    offset = start.utcoffset()
    assert offset is not None  # a ZoneInfo always answers
    return day_number * 86400 + hour * 3600 - int(offset.total_seconds()), len(offsets) == 1


def key_time(value: object, what: str = "time") -> str:
    """A time as it goes into a `message_key`, an identity component (`key_part`'s rule, naming
    `what`): `YYYY-MM-DD HH:MM:SS` (whitespace or `T` between date and time made one space); any
    other form trimmed, each whitespace run made one space. The push and the poll of one SMS
    then get one key however each writes it."""
    if type(value) is str:
        # The common case in one step: text already in key form is a valid identity component.
        text = value.strip()
        if len(text) == 19 and text[10] == " ":
            return text
    text = key_part(value, what)
    if len(text) == 19 and text[10] == " ":
        return text
    found = _KEY_TIME.fullmatch(text)
    if found is not None:
        return f"{found[1]} {found[2]}"
    return " ".join(text.split())
