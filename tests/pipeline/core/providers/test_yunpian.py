"""Yunpian push: form body `sms_status=<url-encoded JSON array>`."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutations import JUNK, mutated
from provider_cases import free_text, id_text

from pipeline.core.normalise import RecordContext
from pipeline.core.providers import yunpian
from pipeline.errors import DecodeError, MalformedBody, UnknownFormat

CTX = RecordContext(topic="t", partition=1, offset=2, timestamp_ms=1_700_000_000_000)

# The example of Yunpian's push documentation, verbatim (the ingress tests push it too).
DATA = Path(__file__).parents[3] / "data"
SEED_EXAMPLE = (DATA / "yunpian_seed_example.json").read_text(encoding="utf-8")


def form(reports: Any, rounds: int = 1) -> bytes:
    text = reports if isinstance(reports, str) else json.dumps(reports, ensure_ascii=False)
    for _ in range(rounds):
        text = urllib.parse.quote_plus(text)
    return b"sms_status=" + text.encode()


def decode(body: bytes, ctx: RecordContext = CTX) -> list[Any]:
    endpoint = yunpian.sniff(body)
    assert endpoint == "push"
    return yunpian.decode(body, endpoint, ctx)


def test_seed_example() -> None:
    first, second = decode(form(SEED_EXAMPLE))
    assert (first.message_key, first.message_id, first.client_ref) == ("9527", "9527", "abc")
    assert (first.recipient, first.recipient_raw) == ("+8615205201314", "15205201314")
    assert (first.status, first.finality, first.provider_status) == (
        "DELIVERED",
        "final",
        "SUCCESS",
    )
    assert (first.provider_code, first.provider_message) == ("DELIVRD", "接收成功")
    assert first.occurred_at == "2014-03-17T14:55:21Z"
    assert (first.occurred_at_raw, first.time_zone) == ("2014-03-17 22:55:21", "Asia/Shanghai")
    assert (first.channel, first.endpoint, first.provider) == ("push", "yunpian.push", "yunpian")
    assert first.source.index == 0 and second.source.index == 1
    assert second.recipient == "+93703334567"
    assert second.occurred_at == "2014-03-17T14:55:23Z"


def report(status: str, code: str = "", **extra: Any) -> dict[str, Any]:
    base = {
        "sid": 1,
        "uid": "u",
        "user_receive_time": "2014-03-17 22:55:21",
        "error_msg": code,
        "error_detail": "d",
        "mobile": "15205201314",
        "report_status": status,
    }
    return base | extra


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("SUCCESS", "DELIVRD", "DELIVERED"),
        ("FAIL", "MK:0001", "UNDELIVERED"),
        ("FAIL", "", "UNDELIVERED"),
        ("FAIL", "EXPIRED", "EXPIRED"),
        ("FAIL", "REJECTD", "REJECTED"),
        ("UNKNOWN", "", "UNKNOWN"),
        ("SOMETHING_NEW", "", "UNKNOWN"),
    ],
)
def test_status_table(status: str, code: str, expected: str) -> None:
    (event,) = decode(form([report(status, code)]))
    assert event.status == expected
    assert event.provider_code == (code or None)


def test_double_encoding_and_string_sid() -> None:
    (event,) = decode(form([report("SUCCESS", sid="18446744073709551616")], rounds=2))
    assert event.message_key == "18446744073709551616"


def test_other_form_fields_and_tz_header() -> None:
    body = b"a=1&" + form([report("SUCCESS")]) + b"&b=2"
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, tz="UTC", account="acc")
    (event,) = decode(body, ctx)
    assert (event.occurred_at, event.time_zone, event.account) == (
        "2014-03-17T22:55:21Z",
        "UTC",
        "acc",
    )


def test_unknown_endpoint() -> None:
    with pytest.raises(UnknownFormat):
        yunpian.decode(form([report("SUCCESS")]), "poll", CTX)


@pytest.mark.parametrize(
    "body",
    [
        b"sms_status=",
        b"sms_status=%5B%7B",  # truncated JSON
        form([{"sid": 1}]),  # missing required fields
        form([report("SUCCESS", sid=1.5)]),  # wrong type
        form({"not": "a list"}),
        b"sms_status=" + b"%5B" * 100_000,  # deep nesting
        b"sms_status=%FF%FE",  # invalid UTF-8
        b'sms_status=[{"sid":1e400}]',
    ],
)
def test_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode(body)


def test_sniff_rejects_other_shapes() -> None:
    for body in (b'{"Response":{}}', b'[{"sid":"1"}]', b"<result/>", b'{"sn":"x"}'):
        assert yunpian.sniff(body) is None


@given(st.binary(max_size=300))
def test_percent_decode_matches_stdlib(raw: bytes) -> None:
    encoded = urllib.parse.quote_plus(raw).encode()
    assert yunpian.percent_decode(encoded) == raw


reports_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "sid": st.one_of(
                st.integers(0, 2**70), st.text(st.characters(categories=["Nd"]), min_size=1)
            ),
            "uid": st.one_of(st.none(), st.text(max_size=10)),
            "user_receive_time": st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)).map(
                lambda d: d.strftime("%Y-%m-%d %H:%M:%S")
            ),
            "error_msg": st.sampled_from(["", "DELIVRD", "EXPIRED", "REJECTD", "MK:100"]),
            "error_detail": st.text(max_size=20),
            "mobile": st.from_regex(r"\A\+?[0-9]{5,15}\Z"),
            "report_status": st.sampled_from(["SUCCESS", "FAIL", "UNKNOWN"]),
        }
    ),
    max_size=20,
)


@given(reports_strategy, st.integers(1, 2))
@settings(deadline=None)
def test_generated_bodies_round_trip(reports: list[dict[str, Any]], rounds: int) -> None:
    events = decode(form(reports, rounds))
    assert [e.message_key for e in events] == [str(r["sid"]) for r in reports]
    assert [e.provider_status for e in events] == [r["report_status"] for r in reports]
    assert [e.recipient_raw for e in events] == [r["mobile"] for r in reports]
    assert [e.provider_message for e in events] == [free_text(r["error_detail"]) for r in reports]
    assert [e.client_ref for e in events] == [id_text(r["uid"]) for r in reports]


@pytest.mark.parametrize("time", ["2014-03-17", "99999-03-17 22:55:21"])
def test_times_bad_time_costs_no_receipt(time: str) -> None:
    (e,) = decode(form([report("SUCCESS", user_receive_time=time)]))
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone) == (None, time, None)


@given(mutated(reports_strategy.map(form), (*JUNK, b"%", b"%2", b"&", b"+")))
@settings(deadline=1000)
def test_mutated_bodies_fail_only_with_decode_error(body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        yunpian.decode(body, "push", CTX)


@given(st.binary(max_size=500))
def test_arbitrary_bytes_fail_only_with_decode_error(body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        yunpian.decode(b"sms_status=" + body, "push", CTX)
