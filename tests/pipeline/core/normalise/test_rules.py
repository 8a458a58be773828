"""The shared rule modules, with the contract's examples (docs/contract.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.normalise import (
    UNMAPPED_STATUSES,
    UNPARSED_TIMES,
    Lookup,
    boolean,
    id_or_none,
    integer,
    key_part,
    key_time,
    map_status,
    national_cn,
    national_fr,
    national_with_cc,
    parse_time,
    recipient,
    text_or_none,
)
from pipeline.errors import MalformedBody

# --- identity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        (" abc\t", "abc"),
        (9527, "9527"),
        (9527.0, "9527"),
        ("9527", "9527"),
        ("é" * 128, "é" * 128),
    ],
)
def test_identity_component_trimmed(value: object, expected: str) -> None:
    assert key_part(value, "sid") == expected


@pytest.mark.parametrize("value", [None, "", "  ", "\u00a0", True, 1.5, "x" * 257, "é" * 129])
def test_identity_component_missing_empty_long_or_not_an_id(value: object) -> None:
    with pytest.raises(MalformedBody, match="sid"):
        key_part(value, "sid")


def test_ids_trimmed_empty_is_absent() -> None:
    assert id_or_none(" order-1 ") == "order-1"
    assert id_or_none("") is None and id_or_none("  ") is None and id_or_none(None) is None
    assert id_or_none(7) == "7" and id_or_none(7.0) == "7"
    with pytest.raises(MalformedBody):
        id_or_none(True)
    assert text_or_none(" \t") is None and text_or_none(" ok ") == " ok "


# --- lenient numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(1, 1), (1.0, 1), ("1", 1), (" 64 ", 64), ("-3", -3), (None, None)]
)
def test_lenient_integer(value: object, expected: int | None) -> None:
    assert integer(value, "count") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1.5, "1.5", "one", "", True, "9" * 40])
def test_lenient_integer_rejects(value: object) -> None:
    with pytest.raises(MalformedBody, match="count"):
        integer(value, "count")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("false", False),
        (" TRUE ", True),
        ("False", False),
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        (None, None),
        ("", None),
    ],
)
def test_lenient_boolean(value: object, expected: bool | None) -> None:
    assert boolean(value, "stopSMS") is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [2, "yes", "2", 0.5])
def test_lenient_boolean_rejects(value: object) -> None:
    with pytest.raises(MalformedBody, match="stopSMS"):
        boolean(value, "stopSMS")  # type: ignore[arg-type]


# --- case folding -----------------------------------------------------------------------------


def test_status_lookup_ignores_case_and_whitespace() -> None:
    table = Lookup({"Success": "DELIVERED", "Fail": "UNDELIVERED"})
    for raw in ("Success", " Success ", "success", "SUCCESS", "\tsuccess\n"):
        assert map_status("t", table, raw) == "DELIVERED"  # type: ignore[arg-type]
    before = UNMAPPED_STATUSES["t"]
    assert map_status("t", table, "Whatever") == "UNKNOWN"  # type: ignore[arg-type]
    assert UNMAPPED_STATUSES["t"] == before + 1
    codes = Lookup({"EXPIRED": "EXPIRED"})
    assert map_status("t", table, "Fail", codes, "expired") == "EXPIRED"  # type: ignore[arg-type]
    assert map_status("t", table, "Fail", codes, "other") == "UNDELIVERED"  # type: ignore[arg-type]
    assert map_status("t", table, "Fail", codes, None) == "UNDELIVERED"  # type: ignore[arg-type]
    assert "expired" not in codes  # a miss is not stored


# --- times ------------------------------------------------------------------------------------

SH = "Asia/Shanghai"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2014-03-17 22:55:21", ("2014-03-17T14:55:21Z", "2014-03-17 22:55:21", SH)),
        ("2014-03-17T22:55:21", ("2014-03-17T14:55:21Z", "2014-03-17T22:55:21", SH)),
        ("2014-03-17\n\t22:55:21", ("2014-03-17T14:55:21Z", "2014-03-17\n\t22:55:21", SH)),
        ("2014-03-17 22:55:21.25", ("2014-03-17T14:55:21.250Z", "2014-03-17 22:55:21.25", SH)),
        ("2014-03-17T14:55:21Z", ("2014-03-17T14:55:21Z", "2014-03-17T14:55:21Z", None)),
        ("2014-03-17 22:55:21+08:00", ("2014-03-17T14:55:21Z", "2014-03-17 22:55:21+08:00", None)),
        ("2014-03-17T09:55:21-0500", ("2014-03-17T14:55:21Z", "2014-03-17T09:55:21-0500", None)),
        (1395068121, ("2014-03-17T14:55:21Z", "1395068121", None)),
        ("1395068121", ("2014-03-17T14:55:21Z", "1395068121", None)),
        (1395068121007, ("2014-03-17T14:55:21.007Z", "1395068121007", None)),
        ("1395068121007", ("2014-03-17T14:55:21.007Z", "1395068121007", None)),
        (1395068121.0079, ("2014-03-17T14:55:21.007Z", "1395068121.0079", None)),
        ("1395068121.5", ("2014-03-17T14:55:21.500Z", "1395068121.5", None)),
        (0, (None, "0", None)),  # placeholders: no time, raw kept
        ("6", (None, "6", None)),
        (-5, (None, "-5", None)),
        ("", (None, None, None)),  # empty means absent
        ("  ", (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_one_time_parser(value: object, expected: tuple[object, ...]) -> None:
    assert parse_time(value, SH, "test") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["yesterday", "2014-13-17 22:55:21", "2014-03-17 25:00:00", "9" * 30, 1e300, "1e9"]
)
def test_unparseable_time_is_null_raw_kept_and_counted(value: object) -> None:
    before = UNPARSED_TIMES["test"]
    at, raw, zone = parse_time(value, SH, "test")  # type: ignore[arg-type]
    assert at is None and zone is None and raw is not None
    assert UNPARSED_TIMES["test"] == before + 1


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        # Pacific/Chatham leaves DST at 03:45 +13:45 -> 02:45 +12:45: 02:45-03:45 occurs twice.
        ("2000-03-19 03:00:00", "2000-03-18T13:15:00Z"),  # ambiguous: the first occurrence
        ("2000-03-19 03:50:00", "2000-03-18T15:05:00Z"),  # after the repeat: +12:45
        ("2000-03-19 02:30:00", "2000-03-18T12:45:00Z"),
        # and enters it at 02:45 +12:45 -> 03:45 +13:45: 02:45-03:45 does not exist.
        ("2000-10-01 03:00:00", "2000-09-30T14:15:00Z"),  # in the gap: the offset before it
        ("2000-10-01 03:50:00", "2000-09-30T14:05:00Z"),
        ("2000-10-01 02:30:00", "2000-09-30T13:45:00Z"),
    ],
)
def test_daylight_saving_edges_rfc5545(wall: str, expected: str) -> None:
    assert parse_time(wall, "Pacific/Chatham", "test")[0] == expected


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(
        [
            "Asia/Shanghai",
            "Europe/Paris",
            "America/New_York",
            "Pacific/Chatham",
            "Australia/Lord_Howe",
            "UTC",
        ]
    ),
)
def test_naive_times_match_zoneinfo_fold_0(naive: datetime, zone: str) -> None:
    # Hypothesis draws fold=1 too: the text has no fold, so it is compared with fold 0.
    naive = naive.replace(microsecond=0, fold=0)
    aware = naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)  # fold=0: RFC 5545's reading
    text = naive.strftime("%Y-%m-%d %H:%M:%S")
    assert parse_time(text, zone, "test")[0] == aware.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_unknown_zone_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="Mars/Olympus"):
        parse_time("2014-03-17 22:55:21", "Mars/Olympus", "test")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-12-21 12:06:01", "2014-12-21 12:06:01"),
        ("2014-12-21\n12:06:01", "2014-12-21 12:06:01"),
        ("2014-12-21T12:06:01", "2014-12-21 12:06:01"),
        (" 2014-12-21  \t 12:06:01 ", "2014-12-21 12:06:01"),
        (" 21/12/2014   12:06 ", "21/12/2014 12:06"),
    ],
)
def test_key_time_canonical(text: str, expected: str) -> None:
    assert key_time(text) == expected


# --- phones -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cc", "rule", "expected"),
    [
        ("+8613711112222", None, None, "+8613711112222"),
        ("+86 137-1111-2222", None, None, "+8613711112222"),
        ("(+33) 6 12 34 56 78", None, None, "+33612345678"),
        ("+33 (0)6 12 34 56 78", None, None, "+33612345678"),  # trunk marker dropped
        ("+33-(0)6.12.34.56.78", None, None, "+33612345678"),  # whatever separates it
        ("+44 (0)20 7946 0958", None, None, "+442079460958"),
        ("0033 6 12 34 56 78", None, None, "+33612345678"),  # 00 prefix
        ("+0033612345678", None, None, "+33612345678"),  # +00 prefix
        ("\u00a0+86\t137.1111/2222", None, None, "+8613711112222"),  # NBSP, tab, . and /
        ("＋８６１３７１１１１２２２２", None, None, "+8613711112222"),  # full-width
        ("٠٦١٢٣٤٥٦٧٨", None, national_fr, "+33612345678"),  # Arabic-Indic digits
        ("13711112222", "86", None, "+8613711112222"),
        ("13711112222", "+86", None, "+8613711112222"),
        ("13711112222", "0086", None, "+8613711112222"),
        ("8618512345678", "86", None, "+8618512345678"),  # already begins with the code
        ("8618512345678", "0086", None, "+8618512345678"),
        ("+8618512345678", "86", None, "+8618512345678"),
        ("12025550123", "1", None, "+12025550123"),
        ("2025550123", "1", None, "+12025550123"),
        ("0612345678", "33", None, "+33612345678"),  # national 0 stripped
        ("13711112222", "0", None, "13711112222"),  # a code that is no code: ignored
        ("13711112222", "8600", None, "13711112222"),
        ("15205201314", None, national_cn, "+8615205201314"),
        ("8615205201314", None, national_cn, "+8615205201314"),
        ("12025550123", None, national_cn, "12025550123"),  # a US number is not Chinese
        ("10086", None, national_cn, "10086"),
        ("8618512345678", None, national_with_cc, "+8618512345678"),
        ("10086", None, national_with_cc, "10086"),
        ("06 12 34 56 78", None, national_fr, "+33612345678"),
        ("0012345678", None, national_fr, "+12345678"),  # 00 prefix, then E.164
        ("1" * 19, None, national_with_cc, "1" * 19),  # too long for E.164
        ("+" + "1" * 19, None, None, "+" + "1" * 19),
        ("9" * 5000, None, national_with_cc, "9" * 5000),
        ("+0123456789", None, None, "+0123456789"),
        (" 10086", None, None, "10086"),
        ("QbPtKJPa", None, national_with_cc, "QbPtKJPa"),
        ("+12ab", None, None, "+12ab"),
        ("", None, None, ""),
    ],
)
def test_phone_numbers(raw: str, cc: str | None, rule: object, expected: str) -> None:
    assert recipient(raw, cc, rule) == expected  # type: ignore[arg-type]
