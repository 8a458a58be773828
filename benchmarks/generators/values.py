"""Values the providers write: local times around DST, phone numbers, batch sizes, JSON bytes."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson


@lru_cache(maxsize=4096)
def _offset_s(zone: str, quarter: int) -> int:
    """UTC offset of `zone` in the 15-minute slot `quarter` (transitions fall on slot edges)."""
    moment = datetime.fromtimestamp(quarter * 900, ZoneInfo(zone))
    offset = moment.utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@lru_cache(maxsize=8192)
def _day(days: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(days=days)).strftime("%Y-%m-%d")


def local_text(epoch_s: int, zone: str) -> str:
    """`YYYY-MM-DD HH:MM:SS` of epoch seconds as a clock in `zone` shows it."""
    t = epoch_s + _offset_s(zone, epoch_s // 900)
    days, rem = divmod(t, 86400)
    return f"{_day(days)} {rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"


US_AREAS: Final = ("202", "212", "305", "310", "415", "512", "617", "646", "702", "917")
DE_PREFIX: Final = (
    "151",
    "152",
    "157",
    "160",
    "162",
    "170",
    "171",
    "172",
    "175",
    "176",
    "177",
    "179",
)
BR_AREAS: Final = ("11", "21", "31", "41", "51", "61", "71", "81", "85", "91")


def _phone(rng: random.Random, country: str) -> tuple[str, str]:
    """(country code, national significant number) of a plausible mobile number."""
    r = rng.randrange
    if country == "CN":
        return "86", f"1{'3456789'[r(7)]}{r(10**9):09d}"
    if country == "FR":
        return "33", f"{'67'[r(2)]}{r(10**8):08d}"
    if country == "US":
        return "1", f"{US_AREAS[r(10)]}{r(200, 1000)}{r(10000):04d}"
    if country == "DE":
        return "49", f"{DE_PREFIX[r(12)]}{r(10**8):08d}"
    if country == "IN":
        return "91", f"{'6789'[r(4)]}{r(10**9):09d}"
    if country == "BR":
        return "55", f"{BR_AREAS[r(10)]}9{r(10**8):08d}"
    if country == "GB":
        return "44", f"7{'45789'[r(5)]}{r(10**8):08d}"
    if country == "BE":
        return "32", f"4{'789'[r(3)]}{r(10**7):07d}"
    return "93", f"7{r(10)}{r(10**7):07d}"  # AF, the seed's own example


def _pick(rng: random.Random, weights: tuple[tuple[Any, float], ...]) -> Any:
    x = rng.random() * weights[-1][1]
    for value, cumulative in weights:
        if x < cumulative:
            return value
    return weights[-1][0]


def _cumulative(*pairs: tuple[Any, float]) -> tuple[tuple[Any, float], ...]:
    out, total = [], 0.0
    for value, weight in pairs:
        total += weight
        out.append((value, total))
    return tuple(out)


def _batch(rng: random.Random, cap: int) -> int:
    """A push/poll batch size up to `cap`: many small batches, a fat tail, full batches."""
    x = rng.random()
    if x < 0.30:
        n = 1
    elif x < 0.55:
        n = rng.randint(2, 10)
    elif x < 0.80:
        n = rng.randint(11, 50)
    elif x < 0.92:
        n = rng.randint(51, 99)
    else:
        n = 100
    return min(n, cap)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _dumps_ascii(obj: Any) -> bytes:
    """The other common JSON spelling: non-ASCII as \\u escapes, spaces after separators."""
    return json.dumps(obj, ensure_ascii=True).encode()
