"""The contract's edge rules, provider by provider (docs/contract.md, "Rules for every
provider"), and conservation: every report of a body is an event, a duplicate, stale, or
dead-lettered, however good and broken reports are mixed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from provider_cases import PROPERTY

from pipeline.core import Core, CoreConfig, InputRecord
from pipeline.core.normalise import RecordContext
from pipeline.core.providers import REGISTRY
from pipeline.errors import MalformedBody, PartialBody, ProviderError
from pipeline.state import Window
from schemas import ReceiptEvent

CTX = RecordContext("t", 0, 1, 1_700_000_000_000)


def _uspeedo(reports: list[dict[str, Any]]) -> bytes:
    return json.dumps({"MsgType": 2, "Data": reports}).encode()


def _ultiroam(reports: list[dict[str, Any]]) -> bytes:
    return json.dumps({"sn": "gw-1", "sms_result": reports}).encode()


def _yunpian(reports: list[dict[str, Any]]) -> bytes:
    return b"sms_status=" + quote(json.dumps(reports)).encode()


def _smspartner(reports: list[dict[str, Any]]) -> bytes:
    body = {"success": True, "code": 200, "message_id": "m1", "StatutResponse_List": reports}
    return json.dumps(body).encode()


def _xml(reports: list[dict[str, Any]]) -> bytes:
    def entry(r: dict[str, Any]) -> str:
        return "<entry>" + "".join(f"<entry>{v}</entry>" for v in r.values()) + "</entry>"

    inner = "".join(entry(r) for r in reports)
    head = "<entry>true</entry><entry>200</entry><entry>m1</entry>"
    return f"<result>{head}<entry>{inner}</entry></result>".encode()


def _tencent(reports: list[dict[str, Any]]) -> bytes:
    return json.dumps(reports).encode()


# provider -> (body builder, endpoint, report builder: (key, status, extra) -> report)
FORMS: dict[str, tuple[Callable[[list[dict[str, Any]]], bytes], str, Callable[..., dict[str, Any]]]]
FORMS = {
    "uspeedo": (
        _uspeedo,
        "push",
        lambda key, status="Success", **kw: {
            "SessionNo": key, "Phone": "8613800138000", "ReceiptResult": status, **kw
        },
    ),
    "ultiroam": (
        _ultiroam,
        "push",
        lambda key, status="DELIVERED", **kw: {
            "port": 1, "number": "+8613800138000", "time": "2014-12-21 12:06:01",
            "status": status, "ref_id": key, **kw,
        },
    ),
    "yunpian": (
        _yunpian,
        "push",
        lambda key, status="SUCCESS", **kw: {
            "sid": key, "mobile": "15205201314", "report_status": status, **kw
        },
    ),
    "smspartner": (
        _smspartner,
        "bulk-status",
        lambda key, status="Delivered", **kw: {
            "phoneNumber": key, "status": status, "stopSMS": False, "date": "1717490131", **kw
        },
    ),
    "tencent": (
        _tencent,
        "callback",
        lambda key, status="SUCCESS", **kw: {
            "sid": key, "mobile": "13711112222", "nationcode": "86", "report_status": status,
            "errmsg": "DELIVRD", **kw,
        },
    ),
}  # fmt: skip
#: A key each report builder turns into a valid, distinct report.
GOOD_KEYS: dict[str, list[Any]] = {
    "uspeedo": ["S1", "S2", "S3"],
    "ultiroam": [1, 2, 3],
    "yunpian": [1, 2, 3],
    "smspartner": ["+33612345671", "+33612345672", "+33612345673"],
    "tencent": ["a1", "a2", "a3"],
}
PROVIDERS = list(FORMS)


def decode(provider: str, reports: list[dict[str, Any]]) -> list[ReceiptEvent]:
    build, endpoint, _ = FORMS[provider]
    return REGISTRY[provider].decode(build(reports), endpoint, CTX)


def report(provider: str, key: Any, **kw: Any) -> dict[str, Any]:
    return FORMS[provider][2](key, **kw)


# --- identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("bad", ["", "  ", "x" * 257])
def test_identity_bad_component_costs_its_report_only(provider: str, bad: str) -> None:
    a, b = GOOD_KEYS[provider][:2]
    reports = [report(provider, a), report(provider, bad), report(provider, b)]
    with pytest.raises(PartialBody) as caught:
        decode(provider, reports)
    assert caught.value.reports == (1,)
    assert "[1]" in str(caught.value)
    assert [e.source.index for e in caught.value.events] == [0, 2]
    with pytest.raises(MalformedBody):  # alone, it is the whole body
        decode(provider, [report(provider, bad)])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_identity_trimmed(provider: str) -> None:
    key = GOOD_KEYS[provider][0]
    padded = f" {key}\t" if isinstance(key, str) else key
    (plain,) = decode(provider, [report(provider, key)])
    (trimmed,) = decode(provider, [report(provider, padded)])
    assert plain.message_key == trimmed.message_key


@pytest.mark.parametrize("provider", ["uspeedo", "ultiroam", "tencent", "yunpian"])
def test_identity_number_ids_are_their_decimal_text(provider: str) -> None:
    keys = {decode(provider, [report(provider, k)])[0].message_key for k in (9527, 9527.0, "9527")}
    assert len(keys) == 1


def test_identity_ultiroam_push_and_poll_share_a_key() -> None:
    push = report("ultiroam", 7, time="2014-12-21 12:06:01")
    poll = report("ultiroam", 7, time="2014-12-21\n12:06:01")
    (a,) = REGISTRY["ultiroam"].decode(_ultiroam([push]), "push", CTX)
    body = json.dumps({"error_code": 200, "sn": "gw-1", "result": [poll]}).encode()
    (b,) = REGISTRY["ultiroam"].decode(body, "query_sms_result", CTX)
    assert a.message_key == b.message_key


@pytest.mark.parametrize("field", ["Phone", "SessionNo"])
def test_identity_uspeedo_empty_phone_or_session(field: str) -> None:
    bad = report("uspeedo", "S1") | {field: ""}
    with pytest.raises(PartialBody, match=field):
        decode("uspeedo", [report("uspeedo", "S2"), bad])


@pytest.mark.parametrize("field", ["number", "port"])
def test_identity_ultiroam_empty_number_or_port(field: str) -> None:
    bad = report("ultiroam", 1) | {field: ""}
    with pytest.raises(PartialBody, match=field):
        decode("ultiroam", [report("ultiroam", 2), bad])


# --- lenient numbers and booleans --------------------------------------------------------------


@pytest.mark.parametrize("value", [2, 2.0, "2", " 2 "])
@pytest.mark.parametrize(("provider", "field"), [("uspeedo", "CostCount"), ("ultiroam", "count")])
def test_lenient_numbers_integer_fields(provider: str, field: str, value: Any) -> None:
    (e,) = decode(provider, [report(provider, GOOD_KEYS[provider][0], **{field: value})])
    assert e.segments == 2


@pytest.mark.parametrize(("provider", "field"), [("uspeedo", "CostCount"), ("ultiroam", "count")])
def test_lenient_numbers_not_a_number_is_invalid(provider: str, field: str) -> None:
    with pytest.raises(MalformedBody, match=field):
        decode(provider, [report(provider, GOOD_KEYS[provider][0], **{field: "two"})])


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", False), ("FALSE", False), (" true ", True), (1, True), ("0", False), (None, None)],
)
def test_lenient_numbers_smspartner_stop_sms(value: Any, expected: bool | None) -> None:
    (e,) = decode("smspartner", [report("smspartner", "+33612345671", stopSMS=value)])
    assert e.opt_out is expected


@pytest.mark.parametrize("value", [64, 64.0, "64", " 64 "])
def test_lenient_numbers_ultiroam_status_code_echoed_as_integer_text(value: Any) -> None:
    item = {"port": 1, "number": "+8613800138000", "time": "2014-12-21 12:06:01", "ref_id": 1}
    body = json.dumps({"sn": "gw", "sms_deliver_status": [item | {"status_code": value}]})
    (e,) = REGISTRY["ultiroam"].decode(body.encode(), "push", CTX)
    assert (e.status, e.provider_status) == ("UNDELIVERED", "64")


def test_lenient_numbers_envelope_fields() -> None:
    body = json.dumps({"MsgType": "2", "Data": [report("uspeedo", "S1")]}).encode()
    assert len(REGISTRY["uspeedo"].decode(body, "push", CTX)) == 1
    body = json.dumps({"RetCode": " 0 ", "Data": []}).encode()
    assert REGISTRY["uspeedo"].decode(body, "poll", CTX) == []
    with pytest.raises(MalformedBody, match="RetCode"):
        REGISTRY["uspeedo"].decode(b'{"RetCode":"zero","Data":[]}', "poll", CTX)


# --- case folding ------------------------------------------------------------------------------

DELIVERED: dict[str, Any] = {
    "uspeedo": ["Success", " Success ", "success", "SUCCESS"],
    "ultiroam": ["DELIVERED", "delivered", " Delivered "],
    "yunpian": ["SUCCESS", "success", " Success "],
    "smspartner": ["Delivered", "delivered", " DELIVERED "],
    "tencent": ["SUCCESS", "success", " Success "],
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_case_folding_status(provider: str) -> None:
    for raw in DELIVERED[provider]:
        (e,) = decode(provider, [report(provider, GOOD_KEYS[provider][0], status=raw)])
        assert (e.status, e.provider_status) == ("DELIVERED", raw)  # verbatim


@pytest.mark.parametrize(
    ("provider", "fail", "code_field"),
    [("uspeedo", "Fail", "ReceiptCode"), ("yunpian", "FAIL", "error_msg"),
     ("tencent", "FAIL", "errmsg")],
)  # fmt: skip
def test_case_folding_fail_code(provider: str, fail: str, code_field: str) -> None:
    for code, status in (("expired", "EXPIRED"), (" Rejectd ", "REJECTED")):
        key = GOOD_KEYS[provider][0]
        (e,) = decode(provider, [report(provider, key, status=fail, **{code_field: code})])
        assert (e.status, e.provider_code) == (status, code)


# --- times -------------------------------------------------------------------------------------

TIME_FIELD: dict[str, Any] = {
    "uspeedo": "ReceiptTime",
    "yunpian": "user_receive_time",
    "smspartner": "date",
    "tencent": "user_receive_time",
}


@pytest.mark.parametrize("provider", list(TIME_FIELD))
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2014-03-17T14:55:21Z", "2014-03-17T14:55:21Z"),
        ("2014-03-17 22:55:21+08:00", "2014-03-17T14:55:21Z"),
        ("2014-03-17T22:55:21+0800", "2014-03-17T14:55:21Z"),
        (1395068121, "2014-03-17T14:55:21Z"),
        (1395068121007, "2014-03-17T14:55:21.007Z"),
        ("1395068121007", "2014-03-17T14:55:21.007Z"),
        (1395068121.25, "2014-03-17T14:55:21.250Z"),
        ("1395068121.25", "2014-03-17T14:55:21.250Z"),
        (0, None),
        ("6", None),
        ("not a time", None),
    ],
)
def test_times_every_form(provider: str, value: Any, expected: str | None) -> None:
    key = GOOD_KEYS[provider][0]
    (e,) = decode(provider, [report(provider, key, **{TIME_FIELD[provider]: value})])
    raw = (
        value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    )
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone) == (expected, raw, None)


def test_times_ultiroam_sent_at_with_offset() -> None:
    (e,) = decode("ultiroam", [report("ultiroam", 1, time="2014-12-21T12:06:01+08:00")])
    assert (e.sent_at, e.time_zone) == ("2014-12-21T04:06:01Z", None)
    assert e.message_key.endswith("|2014-12-21T12:06:01+08:00")


# --- phones ------------------------------------------------------------------------------------


def test_phones_yunpian_plain_json_keeps_plus() -> None:
    reports = [{"sid": 1, "mobile": "+447700900123", "report_status": "SUCCESS"}]
    body = b"sms_status=" + json.dumps(reports).encode() + b"&other=1"
    (e,) = REGISTRY["yunpian"].decode(body, "push", CTX)
    assert (e.recipient, e.recipient_raw) == ("+447700900123", "+447700900123")
    # an `&` inside the JSON does not end the value
    reports = [{"sid": 1, "mobile": "+447700900123", "report_status": "SUCCESS",
                "error_detail": "a&b"}]  # fmt: skip
    body = b"sms_status=" + json.dumps(reports).encode() + b"&other=1"
    assert REGISTRY["yunpian"].decode(body, "push", CTX)[0].provider_message == "a&b"


def test_phones_yunpian_over_long_number_stays_raw() -> None:
    (e,) = decode("yunpian", [report("yunpian", 1, mobile="9" * 5000)])
    assert e.recipient == "9" * 5000


def test_phones_yunpian_us_number_is_not_chinese() -> None:
    (e,) = decode("yunpian", [report("yunpian", 1, mobile="12025550123")])
    assert e.recipient == "12025550123"


@pytest.mark.parametrize(
    ("phone", "cc", "expected"),
    [("18512345678", "0086", "+8618512345678"), ("8618512345678", "86", "+8618512345678"),
     ("1" * 19, None, "1" * 19), ("9" * 200, None, "9" * 200)],
)  # fmt: skip
def test_phones_uspeedo(phone: str, cc: str | None, expected: str) -> None:
    extra = {"Phone": phone} | ({"CountryCode": cc} if cc else {})
    (e,) = decode("uspeedo", [report("uspeedo", "S1", **extra)])
    assert (e.recipient, e.recipient_raw) == (expected, phone)


def test_phones_smspartner_trunk_marker() -> None:
    (e,) = decode("smspartner", [report("smspartner", "+33 (0)6 12 34 56 78")])
    assert e.recipient == "+33612345678"


def test_phones_tencent_nationcode_with_prefixed_number() -> None:
    (e,) = decode("tencent", [report("tencent", "a1", mobile="8613711112222")])
    assert e.recipient == "+8613711112222"


# --- structure ---------------------------------------------------------------------------------


def test_structure_smspartner_xml_bad_recipient_costs_itself_only() -> None:
    good = {"phone": "+33612345671", "status": "Delivered", "stop": "false", "date": "1717490131"}
    bad = good | {"stop": "maybe"}
    with pytest.raises(PartialBody) as caught:
        REGISTRY["smspartner"].decode(_xml([good, bad, good]), "bulk-status", CTX)
    assert caught.value.reports == (1,) and len(caught.value.events) == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"success":true,"code":4,"message":"x","StatutResponse_List":[]}',
        b'{"success":"true","code":"10"}',
        b"<result><entry>true</entry><entry>4</entry><entry>x</entry></result>",
    ],
)
def test_structure_smspartner_code_other_than_200_is_provider_error(body: bytes) -> None:
    with pytest.raises(ProviderError):
        REGISTRY["smspartner"].decode(body, "bulk-status", CTX)


# --- conservation ------------------------------------------------------------------------------

#: How each provider's report is broken: (field, value) making that report invalid.
BREAKS: dict[str, list[tuple[str, Any]]] = {
    "uspeedo": [("SessionNo", " "), ("CostCount", "many"), ("Phone", ""), ("SessionNo", True)],
    "ultiroam": [("ref_id", ""), ("count", "x"), ("number", " "), ("port", 1.5)],
    "yunpian": [("sid", ""), ("sid", 1.5), ("sid", True), ("sid", "x" * 300)],
    "smspartner": [("phoneNumber", " "), ("stopSMS", "maybe"), ("phoneNumber", None)],
    "tencent": [("sid", ""), ("sid", False), ("sid", 2.5), ("report_status", 7)],
}
STATUSES: dict[str, list[Any]] = {
    "uspeedo": ["Success", "fail", "Unknow", "SubmitFail"],
    "ultiroam": ["SENDING", "sent_ok", "DELIVERED", "FAILED"],
    "yunpian": ["SUCCESS", "fail", "UNKNOWN"],
    "smspartner": ["Waiting", "delivered", "Not delivered"],
    "tencent": ["SUCCESS", "fail", "UNKNOWN"],
}


@st.composite
def mixed_bodies(draw: st.DrawFn, provider: str) -> tuple[bytes, int]:
    """(body, number of reports): good and broken reports mixed, keys repeating."""
    n = draw(st.integers(0, 8))
    reports = []
    for _ in range(n):
        key = draw(st.sampled_from(GOOD_KEYS[provider]))
        r = report(provider, key, status=draw(st.sampled_from(STATUSES[provider])))
        if draw(st.booleans()):
            field, value = draw(st.sampled_from(BREAKS[provider]))
            r[field] = value
        reports.append(r)
    xml = provider == "smspartner" and draw(st.booleans())
    if xml:
        rows = [
            {"p": r.get("phoneNumber") or "", "s": r["status"], "o": r["stopSMS"], "d": r["date"]}
            for r in reports
        ]
        return _xml(rows), n
    return FORMS[provider][0](reports), n


def _positions(text: str) -> int:
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def _conserved(provider: str, body: bytes, n: int) -> None:
    core = Core(Window(100_000, 3_600_000), CoreConfig())
    endpoint = FORMS[provider][1]
    headers = [("provider", provider.encode()), ("endpoint", endpoint.encode())]
    result = core.process([InputRecord("raw", 0, 1, 1_700_000_000_000, headers, body)])
    counters = core.window.counters  # type: ignore[union-attr]
    dead = 0
    for letter in result.dead_letters:
        found = dict(letter.headers)
        if letter.error_class == "PartialBody":
            dead += _positions(found["error.reports"].decode())
        else:
            assert letter.error_class == "MalformedBody", found["error.message"]
            dead += n
    events = sum(counters.emitted) + sum(counters.duplicates) + sum(counters.stale)
    assert len(result.outputs) == sum(counters.emitted)
    assert n == events + dead


@pytest.mark.parametrize("provider", PROVIDERS)
def test_conservation_fixed(provider: str) -> None:
    a, b = GOOD_KEYS[provider][:2]
    field, value = BREAKS[provider][0]
    reports = [report(provider, a), report(provider, b) | {field: value}, report(provider, a)]
    _conserved(provider, FORMS[provider][0](reports), 3)


@PROPERTY
@given(st.data())
@pytest.mark.parametrize("provider", PROVIDERS)
def test_conservation_property(provider: str, data: st.DataObject) -> None:
    body, n = data.draw(mixed_bodies(provider))
    _conserved(provider, body, n)


def test_structure_partial_body_reasons_name_each_report_by_its_place() -> None:
    """A bad report is decoded alone to find its reason; the reason still names its place in
    the body, not its place in that one-report body."""
    reports = [report("tencent", "a1"), report("tencent", "a2"), {"sid": "a3", "mobile": [1]}]
    with pytest.raises(PartialBody) as caught:
        decode("tencent", reports)
    assert caught.value.reports == (2,)
    assert "[2] tencent body: Expected `str | null`, got `array` - at `$[2].mobile`" in str(
        caught.value
    )
