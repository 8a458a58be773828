"""uSpeedo decoder: documented example, every row of the contract's mapping, errors, sniffing,
property tests and hostile inputs."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import JUNK, mutated
from provider_cases import (
    PROPERTY,
    bodies_of_other_providers,
    decode_one,
    epoch_utc,
    folded,
    free_text,
    id_text,
    ids,
    key_ids,
    key_text,
    survives,
    text,
)

from pipeline.core.normalise import UNMAPPED_STATUSES, RecordContext, national_with_cc
from pipeline.core.normalise import recipient as e164
from pipeline.core.providers import uspeedo
from pipeline.errors import MalformedBody, NotReceipts, ProviderError, UnknownFormat
from schemas import ReceiptEvent

CTX = RecordContext(topic="raw", partition=3, offset=42, timestamp_ms=1_700_000_000_123)
POLL = "GetUSMSSendReceipt"

# The seed's response example, verbatim (placeholder values included: "QbPtKJPa" is no phone
# and ReceiptTime 6 is 6 s after the epoch; they are checked for shape only).
SEED_POLL = b"""{
    "Action": "GetUSMSSendReceiptResponse",
    "Message": "OnVhSPcD",
    "Data": [
        {
            "SessionNo": "BmThtoRB",
            "ReceiptSet": [
                {
                    "CostCount": 6,
                    "ReceiptTime": 6,
                    "UserId": "1213",
                    "ReceiptCode": "0",
                    "Phone": "QbPtKJPa",
                    "ReceiptResult": "Success",
                    "ReceiptDesc": "DxMRsuET"
                }
            ]
        }
    ],
    "RetCode": 0
}"""

# uSpeedo's documentation shows no push body; these follow the contract's uSpeedo mapping.
PUSH_OBJECT = b"""{"MsgType":2,"AccountId":61001,"Data":[
 {"SessionNo":"a1b2c3","Phone":"8618512345678","CostCount":1,"ReceiptTime":1700000100,
  "ReceiptResult":"Success","ReceiptCode":"DELIVRD","ReceiptDesc":"success","UserId":"order-1"},
 {"SessionNo":"a1b2c3","Phone":"447700900123","CostCount":2,"ReceiptTime":"1700000200",
  "ReceiptResult":"Fail","ReceiptCode":"REJECTD","ReceiptDesc":"rejected","UserId":""}]}"""
PUSH_ARRAY = b"""[{"SessionNo":"s-9","Phone":"+33612345678","CostCount":1,"ReceiptTime":1700000300,
  "ReceiptResult":"Unknow","ReceiptCode":"","ReceiptDesc":"","UserId":"7"}]"""


def one(body: bytes, endpoint: str = "push", ctx: RecordContext = CTX) -> ReceiptEvent:
    return decode_one(uspeedo, body, endpoint, ctx)


def push(**fields: Any) -> bytes:
    report = {"SessionNo": "S1", "Phone": "8613800138000", "ReceiptResult": "Success"}
    report.update(fields)
    return json.dumps({"MsgType": 2, "Data": [report]}).encode()


def test_seed_poll_example() -> None:
    assert uspeedo.sniff(SEED_POLL) == POLL
    e = one(SEED_POLL, POLL)
    assert e.v == 1
    assert e.provider == "uspeedo"
    assert e.account is None
    assert e.channel == "poll"
    assert e.endpoint == "uspeedo.GetUSMSSendReceipt"
    assert e.message_key == "BmThtoRB|QbPtKJPa"
    assert e.message_id is None
    assert e.batch_id == "BmThtoRB"
    assert e.client_ref == "1213"
    assert e.recipient == "QbPtKJPa"  # not a number: the trimmed raw value
    assert e.recipient_raw == "QbPtKJPa"
    assert e.status == "DELIVERED"
    assert e.finality == "final"
    assert e.provider_status == "Success"
    assert e.provider_code == "0"
    assert e.provider_message == "DxMRsuET"
    assert e.segments == 6
    assert e.segments_ok is None
    assert e.opt_out is None
    assert e.occurred_at is None  # a placeholder before 2000 is no time
    assert e.occurred_at_raw == "6"
    assert e.sent_at is None
    assert e.time_zone is None
    assert e.observed_at == "2023-11-14T22:13:20.123Z"
    assert (e.source.topic, e.source.partition, e.source.offset, e.source.index) == (
        "raw",
        3,
        42,
        0,
    )
    assert len(e.event_id) == 32 and int(e.event_id, 16) >= 0


def test_push_object() -> None:
    assert uspeedo.sniff(PUSH_OBJECT) == "push"
    a, b = uspeedo.decode(PUSH_OBJECT, "push", CTX)
    assert (a.channel, a.endpoint, a.account) == ("push", "uspeedo.push", "61001")
    assert (a.message_key, a.batch_id, a.client_ref) == (
        "a1b2c3|+8618512345678",
        "a1b2c3",
        "order-1",
    )
    assert (a.recipient, a.recipient_raw) == ("+8618512345678", "8618512345678")
    assert (a.status, a.provider_status, a.provider_code, a.provider_message) == (
        "DELIVERED",
        "Success",
        "DELIVRD",
        "success",
    )
    assert (a.segments, a.occurred_at, a.occurred_at_raw) == (
        1,
        "2023-11-14T22:15:00Z",
        "1700000100",
    )
    assert (b.message_key, b.client_ref, b.recipient) == (
        "a1b2c3|+447700900123",
        None,
        "+447700900123",
    )
    assert (b.status, b.provider_code, b.segments) == ("REJECTED", "REJECTD", 2)
    assert (b.occurred_at, b.occurred_at_raw) == ("2023-11-14T22:16:40Z", "1700000200")
    assert [a.source.index, b.source.index] == [0, 1]


def test_push_bare_array() -> None:
    assert uspeedo.sniff(PUSH_ARRAY) == "push"
    e = one(PUSH_ARRAY)
    assert (e.endpoint, e.channel, e.account) == ("uspeedo.push", "push", None)
    assert (e.message_key, e.recipient, e.status, e.finality) == (
        "s-9|+33612345678",
        "+33612345678",
        "UNKNOWN",
        "soft_final",
    )
    assert (e.provider_code, e.provider_message, e.client_ref) == (None, None, "7")


def test_poll_index_runs_across_sessions() -> None:
    body = json.dumps(
        {
            "RetCode": 0,
            "Action": "GetUSMSSendReceiptResponse",
            "Data": [
                {
                    "SessionNo": "A",
                    "ReceiptSet": [
                        {"Phone": "8613800138000", "ReceiptResult": "Success"},
                        {"Phone": "8613800138001", "ReceiptResult": "Fail"},
                    ],
                },
                {"SessionNo": "B", "ReceiptSet": []},
                {
                    "SessionNo": "C",
                    "ReceiptSet": [{"Phone": "12025550123", "ReceiptResult": "Success"}],
                },
            ],
        }
    ).encode()
    events = uspeedo.decode(body, POLL, CTX)
    assert [(e.batch_id, e.source.index) for e in events] == [("A", 0), ("A", 1), ("C", 2)]
    assert events[2].message_key == "C|+12025550123"


# --- every row of the status table (case-insensitive) -----------------------------------------

STATUS_ROWS = [
    ("Success", None, "DELIVERED"),
    ("发送成功", None, "DELIVERED"),
    ("Sent successfully", None, "DELIVERED"),
    ("Fail", "DB:0103", "UNDELIVERED"),
    ("Fail", "EXPIRED", "EXPIRED"),
    ("Fail", "REJECTD", "REJECTED"),
    ("发送失败", "UNDELIV", "UNDELIVERED"),
    ("发送失败", "EXPIRED", "EXPIRED"),
    ("发送失败", "REJECTD", "REJECTED"),
    ("Sending failed", None, "UNDELIVERED"),
    ("Sending failed", "EXPIRED", "EXPIRED"),
    ("Sending failed", "REJECTD", "REJECTED"),
    ("Unknow", None, "UNKNOWN"),
    ("UNKNOWN", None, "UNKNOWN"),
    ("状态未知", None, "UNKNOWN"),
    ("Unknown state", None, "UNKNOWN"),
    ("SubmitFail", "SUBFAIL", "FAILED"),
    # The EXPIRED/REJECTD codes only refine a failure.
    ("Success", "EXPIRED", "DELIVERED"),
    ("SubmitFail", "REJECTD", "FAILED"),
]


@pytest.mark.parametrize(("result", "code", "status"), STATUS_ROWS)
@pytest.mark.parametrize("case", [str, str.upper, str.lower, str.swapcase])
def test_status_table(result: str, code: str | None, status: str, case: Any) -> None:
    e = one(push(ReceiptResult=case(result), ReceiptCode=code))
    assert e.status == status
    assert e.provider_status == case(result)  # verbatim
    assert e.provider_code == code


def test_every_row_of_the_tables_has_a_case() -> None:
    """A row added to the product's tables must come with a case from the documents above."""
    assert set(uspeedo._STATUS) <= {result for result, _, _ in STATUS_ROWS}
    cased = {code for result, code, _ in STATUS_ROWS if result.lower() == "fail"}
    assert set(uspeedo._FAIL_BY_CODE) <= cased


def test_unmapped_status_is_unknown_and_counted() -> None:
    before = UNMAPPED_STATUSES["uspeedo"]
    e = one(push(ReceiptResult="Bounced"))
    assert (e.status, e.provider_status) == ("UNKNOWN", "Bounced")
    assert UNMAPPED_STATUSES["uspeedo"] == before + 1


def test_case_folding_status_and_code() -> None:
    e = one(push(ReceiptResult=" Success ", ReceiptCode="expired"))
    assert (e.status, e.provider_status) == ("DELIVERED", " Success ")
    e = one(push(ReceiptResult="fail", ReceiptCode="expired"))
    assert (e.status, e.provider_code) == ("EXPIRED", "expired")  # verbatim
    assert one(push(ReceiptResult="FAIL", ReceiptCode=" rejectd ")).status == "REJECTED"
    assert one(push(ReceiptResult="Fail", ReceiptCode=0)).provider_code == "0"


# --- phone rules ---------------------------------------------------------------------------------

PHONES = [
    ("+8613800138000", None, "+8613800138000"),  # already E.164: kept
    ("+44 7700-900 123", None, "+447700900123"),  # separators stripped before deciding
    ("+44 7700 900123", "33", "+447700900123"),  # a `+` wins over CountryCode
    ("8618512345678", None, "+8618512345678"),  # country code without `+`
    (" 86 185-1234-5678 ", None, "+8618512345678"),
    ("07700900123", "44", "+447700900123"),  # separate CountryCode: national leading 0 stripped
    ("7700900123", "44", "+447700900123"),
    ("2025550123", 1, "+12025550123"),  # CountryCode as a number
    ("612345678", "+33", "+33612345678"),
    ("0612345678", None, "0612345678"),  # national number, no country: trimmed raw
    # By contract every uSpeedo digit string carries its country code, even a short one.
    (" 10086 ", None, "10086"),  # a short code cannot carry a country code: trimmed raw
    ("QbPtKJPa", None, "QbPtKJPa"),  # the seed's placeholder
]


@pytest.mark.parametrize(("phone", "cc", "recipient"), PHONES)
def test_phone_rules(phone: str, cc: str | int | None, recipient: str) -> None:
    fields: dict[str, Any] = {"Phone": phone}
    if cc is not None:
        fields["CountryCode"] = cc
    e = one(push(**fields))
    assert (e.recipient, e.recipient_raw, e.message_key) == (recipient, phone, f"S1|{recipient}")


def test_phone_rules_in_poll_with_country_code() -> None:
    body = (
        b'{"RetCode":0,"Data":[{"SessionNo":"X","ReceiptSet":[{"Phone":"0612345678",'
        b'"CountryCode":"33","ReceiptResult":"Success"}]}]}'
    )
    assert one(body, POLL).recipient == "+33612345678"


# --- times: epoch seconds, UTC, no zone ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "occurred", "raw"),
    [
        (1700000000, "2023-11-14T22:13:20Z", "1700000000"),
        ("1700000000", "2023-11-14T22:13:20Z", "1700000000"),
        (1394981721, "2014-03-16T14:55:21Z", "1394981721"),
        (0, None, "0"),  # "no time yet", not 1970
        ("", None, None),
    ],
)
def test_receipt_time(value: int | str, occurred: str | None, raw: str | None) -> None:
    # A tz header must not matter: epochs are UTC.
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, tz="Asia/Shanghai")
    e = one(push(ReceiptTime=value), ctx=ctx)
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone, e.sent_at) == (occurred, raw, None, None)


def test_missing_optional_fields() -> None:
    e = one(push())
    assert (e.occurred_at, e.occurred_at_raw, e.segments, e.client_ref) == (None, None, None, None)
    assert (e.provider_code, e.provider_message) == (None, None)


# --- ids, account ------------------------------------------------------------------------------


def test_ids_keep_exact_values() -> None:
    big = 2**64 + 12345
    e = one(push(SessionNo=big, UserId=2**63 - 1))
    assert (e.batch_id, e.client_ref) == (str(big), str(2**63 - 1))
    assert e.message_key == f"{big}|+8613800138000"


def test_account_from_body_and_header_wins() -> None:
    body = (
        b'{"RetCode":0,"AccountId":12,"Data":[{"SessionNo":"X","ReceiptSet":['
        b'{"Phone":"8613800138000","ReceiptResult":"Success"}]}]}'
    )
    assert one(body, POLL).account == "12"
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, account="hdr")
    assert one(body, POLL, ctx).account == "hdr"
    assert one(push(AccountId="acc-7")).account == "acc-7"


def test_endpoint_aliases_and_body_decides() -> None:
    for alias in ("GetUSMSSendReceipt", "GetUSMSSendReceiptResponse", "poll", "push", "callback"):
        assert one(SEED_POLL, alias).endpoint == "uspeedo.GetUSMSSendReceipt"
        assert one(PUSH_ARRAY, alias).endpoint == "uspeedo.push"
    with pytest.raises(UnknownFormat, match="SendUSMSMessage"):
        uspeedo.decode(SEED_POLL, "SendUSMSMessage", CTX)


# --- provider errors, non-receipts --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"Action":"GetUSMSSendReceiptResponse","RetCode":215398,"Message":"Invalid SessionNo"}',
        # The error class wins even when Data is absent, null or nonsense.
        b'{"RetCode":215398,"Message":"Invalid SessionNo","Data":null}',
        b'{"RetCode":215398,"Message":"Invalid SessionNo","Data":{"x":[1,2]}}',
    ],
)
def test_provider_error(body: bytes) -> None:
    with pytest.raises(ProviderError, match=r"215398.*Invalid SessionNo"):
        uspeedo.decode(body, POLL, CTX)


def test_provider_error_without_message() -> None:
    with pytest.raises(ProviderError, match="RetCode -1"):
        uspeedo.decode(b'{"RetCode":-1}', POLL, CTX)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (
            b'{"MsgType":0,"Data":[{"Phone":"8613800138000","Content":"STOP","ReceiveTime":1}]}',
            "uspeedo.inbound",
        ),
        (b'{"MsgType":0}', "uspeedo.inbound"),
        (b'{"MsgType":1,"Data":[{"anything":true}]}', "uspeedo.msgtype1"),
        (b'{"MsgType":123456789,"Data":[]}', "uspeedo.msgtype_other"),
        (b'{"MsgType":-3,"Data":[]}', "uspeedo.msgtype_other"),
    ],
)
def test_not_receipts(body: bytes, kind: str) -> None:
    assert uspeedo.sniff(body) == "push"
    with pytest.raises(NotReceipts) as info:
        uspeedo.decode(body, "push", CTX)
    assert info.value.kind == kind


# --- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "endpoint"),
    [
        (SEED_POLL, POLL),
        (PUSH_OBJECT, "push"),
        (PUSH_ARRAY, "push"),
        (b' \n[ {"SessionNo": "x"}]', "push"),
        (b'{"RetCode":170,"Message":"Missing AccountId"}', POLL),
        (b'{"Action" : "GetUSMSSendReceiptResponse"}', POLL),
        (b'{"Data":[{"SessionNo":"x","ReceiptSet":[]}]}', POLL),
    ],
)
def test_sniff_own_formats(body: bytes, endpoint: str) -> None:
    assert uspeedo.sniff(body) == endpoint


@pytest.mark.parametrize("body", bodies_of_other_providers("uspeedo"))
def test_sniff_rejects_other_providers(body: bytes) -> None:
    assert uspeedo.sniff(body) is None


def test_sniff_finds_keys_beyond_the_head() -> None:
    pad = '"Extra":"' + "x" * 2000 + '",'
    assert uspeedo.sniff(("{" + pad + '"MsgType":2,"Data":[]}').encode()) == "push"
    assert uspeedo.sniff(("{" + pad + '"RetCode":0,"Data":[]}').encode()) == POLL
    assert uspeedo.sniff(("[{" + pad + '"SessionNo":"x"}]').encode()) == "push"
    assert uspeedo.sniff(("{" + pad + '"other":1}').encode()) is None


def test_sniff_ignores_keys_inside_strings() -> None:
    # `"RetCode":` inside a JSON string has escaped quotes, so it is no key.
    body = b'{"Response":{"Error":{"Code":"X","Message":"saw \\"RetCode\\": 5"}}}'
    assert uspeedo.sniff(body) is None
    assert uspeedo.sniff(b"[]") is None


# --- hostile and malformed inputs --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"RetCode":0,"Data":' + b"[" * 100_000,
        b'{"MsgType":2,"Data":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"{" * 100_000,
        b"\xff\xfe{}",
        b'{"RetCode":0,"Message":"\xc3\x28","Data":[]}',
        b"",
        b"null",
        b"42",
        b'"RetCode"',
        b'{"RetCode":0,"Data":[{"SessionNo":"x","ReceiptSet":[{"Phone":"1"}]}]}',  # no result
        b'{"RetCode":0,"Data":[{"ReceiptSet":[]}]}',  # no SessionNo
        b'{"RetCode":0.5,"Data":[]}',
        b'{"RetCode":1e400,"Data":[]}',
        b'{"RetCode":0,"Data":{"SessionNo":"x"}}',
        b'{"RetCode":0,"Data":[{"SessionNo":"x","ReceiptSet":[{"Phone":8613800138000,'
        b'"ReceiptResult":"Success"}]}]}',  # phone as a number
        b'{"MsgType":2}',
        b'{"MsgType":2,"Data":[{"SessionNo":"x","Phone":"1","ReceiptResult":"Success",'
        b'"CostCount":1e400}]}',
        b'{"MsgType":2,"Data":[{"SessionNo":["x"],"Phone":"1","ReceiptResult":"Success"}]}',
        b'[{"SessionNo":"x","Phone":"1","ReceiptResult":null}]',
        b'[{"SessionNo":"x","Phone":"1","ReceiptResult":"Success"}',  # truncated
        b'{"Action":"GetUSMSSendReceiptResponse"}',  # no RetCode, no MsgType
    ],
)
def test_malformed(body: bytes) -> None:
    for endpoint in ("push", POLL):
        with pytest.raises(MalformedBody):
            uspeedo.decode(body, endpoint, CTX)


@pytest.mark.parametrize(
    "value",
    [
        10**30,
        -1,
        253_402_300_800_000,
        1.5,
        "1e9",
        "-5",
        "12:00",
        "１７００",
        "²",
        "9" * 5000,
    ],
)
def test_times_bad_time_costs_no_receipt(value: Any) -> None:
    body = push(ReceiptTime=0).replace(b'"ReceiptTime": 0', b'"ReceiptTime": ' + _literal(value))
    e = one(body)
    assert e.occurred_at is None and e.occurred_at_raw is not None and e.time_zone is None


@pytest.mark.parametrize("literal", [b"true", b"1e400"])  # no time value, or no JSON float
def test_times_not_a_time_value(literal: bytes) -> None:
    body = push(ReceiptTime=0).replace(b'"ReceiptTime": 0', b'"ReceiptTime": ' + literal)
    with pytest.raises(MalformedBody):
        uspeedo.decode(body, "push", CTX)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1395068121, "2014-03-17T14:55:21Z"),
        (1395068121007, "2014-03-17T14:55:21.007Z"),  # milliseconds
        (1395068121.5, "2014-03-17T14:55:21.500Z"),  # fractional seconds
        ("1395068121", "2014-03-17T14:55:21Z"),
        ("2014-03-17T14:55:21Z", "2014-03-17T14:55:21Z"),
        ("2014-03-17 22:55:21+08:00", "2014-03-17T14:55:21Z"),
        ("2014-03-17 14:55:21", "2014-03-17T14:55:21Z"),  # naive: UTC for uSpeedo
    ],
)
def test_times_every_form(value: Any, expected: str) -> None:
    body = push(ReceiptTime=0).replace(b'"ReceiptTime": 0', b'"ReceiptTime": ' + _literal(value))
    assert one(body).occurred_at == expected


def _literal(value: Any) -> bytes:
    if isinstance(value, float) and value == float("inf"):
        return b"1e400"
    return json.dumps(value).encode()


# --- property tests ----------------------------------------------------------------------------

# The property tests need only the data: the product's tables, checked row by row by STATUS_ROWS.
# (folded here independently of the product's look-up)
TABLE = {folded(result): status for result, status in uspeedo._STATUS.items()}
FAIL_BY_CODE = {folded(code): status for code, status in uspeedo._FAIL_BY_CODE.items()}
RESULTS = list(uspeedo._STATUS)

digits = st.text("0123456789", min_size=1, max_size=12)
nz_digits = st.builds(lambda a, b: a + b, st.sampled_from("123456789"), digits)


def _decorate(number: str, cuts: list[int]) -> str:
    for cut in sorted(set(cuts), reverse=True):
        number = number[:cut] + " -"[cut % 2] + number[cut:]
    return number


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str | int | None, str]:
    """(Phone, CountryCode, expected recipient)."""
    kind = draw(st.sampled_from(["plus", "with_cc", "separate_cc", "national", "junk"]))
    if kind == "plus":
        number = draw(nz_digits)
        cuts = draw(st.lists(st.integers(2, len(number)), max_size=3))
        return " " + _decorate("+" + number, cuts), draw(st.none() | st.just("44")), "+" + number
    if kind == "with_cc":
        number = draw(nz_digits)
        cuts = (
            draw(st.lists(st.integers(1, len(number) - 1), max_size=3)) if len(number) > 1 else []
        )
        # Fewer than 8 digits is a short code: trimmed raw, no `+`.
        return (
            _decorate(number, cuts),
            None,
            "+" + number if len(number) >= 8 else _decorate(number, cuts),
        )
    if kind == "separate_cc":
        cc = draw(nz_digits.filter(lambda c: len(c) <= 3))
        national = draw(digits)
        expected = "+" + cc + (national[1:] if national[0] == "0" else national)
        return national, draw(st.sampled_from([cc, int(cc), "+" + cc])), expected
    if kind == "national":
        number = "0" + draw(digits)
        return number, None, number
    junk = draw(st.text("abcXYZ#*", min_size=1, max_size=10))
    return junk, None, junk


@st.composite
def reports(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(wire report without SessionNo, expected event fields)."""
    phone, cc, _ = draw(phones())
    # The phone rules are tested on their own (test_rules.py): here, that they are applied.
    recipient = e164(phone, None if cc is None else str(cc), national_with_cc)
    result = draw(
        st.sampled_from(RESULTS).flatmap(
            lambda r: st.sampled_from([r, r.upper(), r.lower(), r.swapcase()])
        )
        | text.filter(lambda t: folded(t) not in TABLE)
    )
    code = draw(st.sampled_from(["EXPIRED", "REJECTD", "DELIVRD", "0", "", None]) | text | ids)
    code_text = None if code is None else str(code)
    status = TABLE.get(folded(result), "UNKNOWN")
    if status == "UNDELIVERED" and code_text:
        status = FAIL_BY_CODE.get(folded(code_text), status)
    wire: dict[str, Any] = {"Phone": phone, "ReceiptResult": result}
    if cc is not None:
        wire["CountryCode"] = cc
    if code is not None:
        wire["ReceiptCode"] = code
    expected: dict[str, Any] = {
        "recipient": recipient,
        "recipient_raw": phone,
        "status": status,
        "provider_status": result,
        "provider_code": free_text(code_text),
        "provider_message": None,
        "segments": None,
        "client_ref": None,
        "occurred_at": None,
        "occurred_at_raw": None,
    }
    if draw(st.booleans()):
        desc = draw(text)
        wire["ReceiptDesc"] = desc
        expected["provider_message"] = free_text(desc)
    if draw(st.booleans()):
        wire["CostCount"] = expected["segments"] = draw(st.integers(0, 2**70))
    if draw(st.booleans()):
        user = draw(ids)
        wire["UserId"] = user
        expected["client_ref"] = id_text(user)
    if draw(st.booleans()):
        seconds = draw(st.integers(946_684_800, 10**11 - 1))
        wire["ReceiptTime"] = draw(st.sampled_from([seconds, str(seconds)]))
        expected["occurred_at"] = epoch_utc(seconds)
        expected["occurred_at_raw"] = str(seconds)
    for key, value in draw(st.dictionaries(st.sampled_from(["x_a", "x_b", "Extra"]), ids)).items():
        wire[key] = value  # unknown fields are ignored
    return wire, expected


def _check(event: ReceiptEvent, session: Any, expected: dict[str, Any], index: int) -> None:
    for field, value in expected.items():
        assert getattr(event, field) == value, field
    assert event.batch_id == key_text(session)
    assert event.message_key == f"{key_text(session)}|{expected['recipient']}"
    assert event.source.index == index
    assert event.time_zone is None and event.sent_at is None and event.message_id is None
    msgspec.json.encode(event)  # encodable as is


def _dumps(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode()


@PROPERTY
@given(
    sessions=st.lists(st.tuples(key_ids, st.lists(reports(), max_size=4)), max_size=4),
    account=st.none() | ids,
    ascii_only=st.booleans(),
)
def test_property_poll(sessions: list[Any], account: Any, ascii_only: bool) -> None:
    body: dict[str, Any] = {
        "Action": "GetUSMSSendReceiptResponse",
        "RetCode": 0,
        "Data": [
            {"SessionNo": s, "ReceiptSet": [w for w, _ in rs], "x_extra": [1, {"a": None}]}
            for s, rs in sessions
        ],
    }
    if account is not None:
        body["AccountId"] = account
    raw = _dumps(body, ascii_only)
    assert uspeedo.sniff(raw) == POLL
    events = uspeedo.decode(raw, POLL, CTX)
    flat = [(s, exp) for s, rs in sessions for _, exp in rs]
    assert len(events) == len(flat)
    for i, (event, (session, exp)) in enumerate(zip(events, flat, strict=True)):
        _check(event, session, exp, i)
        assert event.channel == "poll" and event.endpoint == "uspeedo.GetUSMSSendReceipt"
        assert event.account == id_text(account)


@PROPERTY
@given(
    items=st.lists(st.tuples(key_ids, reports()), max_size=6),
    envelope=st.booleans(),
    ascii_only=st.booleans(),
)
def test_property_push(items: list[Any], envelope: bool, ascii_only: bool) -> None:
    data = [{"SessionNo": s, **w} for s, (w, _) in items]
    raw = _dumps({"MsgType": 2, "Data": data} if envelope else data, ascii_only)
    if envelope or items:
        assert uspeedo.sniff(raw) == "push"
    events = uspeedo.decode(raw, "push", CTX)
    assert len(events) == len(items)
    for i, (event, (session, (_, exp))) in enumerate(zip(events, items, strict=True)):
        _check(event, session, exp, i)
        assert event.channel == "push" and event.endpoint == "uspeedo.push"


def _valid_bodies() -> st.SearchStrategy[bytes]:
    report = reports().map(lambda r: {"SessionNo": "S", **r[0]})
    poll = st.lists(report, max_size=3).map(
        lambda rs: _dumps({"RetCode": 0, "Data": [{"SessionNo": "S", "ReceiptSet": rs}]}, False)
    )
    push_obj = st.lists(report, max_size=3).map(
        lambda rs: _dumps({"MsgType": 2, "Data": rs}, False)
    )
    push_arr = st.lists(report, max_size=3).map(lambda rs: _dumps(rs, True))
    return st.one_of(
        poll, push_obj, push_arr, st.sampled_from([SEED_POLL, PUSH_OBJECT, PUSH_ARRAY])
    )


def mutated_bodies() -> st.SearchStrategy[bytes]:
    return mutated(_valid_bodies(), (*JUNK, b'"x":'))


@PROPERTY
@given(st.binary(max_size=300))
def test_property_arbitrary_bytes(body: bytes) -> None:
    survives(uspeedo, body, ("push", POLL), CTX)


@PROPERTY
@given(mutated_bodies())
def test_property_mutated_bodies(body: bytes) -> None:
    survives(uspeedo, body, ("push", POLL), CTX)
