"""Ultiroam decoder: documented examples, every row of the contract's mapping, errors, sniffing,
property tests and hostile inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import JUNK, mutated
from provider_cases import (
    PROPERTY,
    bodies_of_other_providers,
    decode_one,
    folded,
    id_text,
    ids,
    key_ids,
    key_text,
    survives,
    text,
)

from pipeline.core.normalise import UNMAPPED_STATUSES, RecordContext
from pipeline.core.normalise import recipient as e164
from pipeline.core.providers import ultiroam
from pipeline.errors import MalformedBody, NotReceipts, ProviderError, UnknownFormat
from schemas import ReceiptEvent

CTX = RecordContext(topic="raw", partition=1, offset=9, timestamp_ms=1_700_000_000_000)
SN = "xxxx-xxxx-xxxx-xxxx"

# The seed's examples. Cleaned of wiki line-wrap artifacts: the page breaks `"port":\n0`
# (harmless), the `time` strings ("2014-12-21\n12:06:01", a raw newline is invalid JSON, so it is
# a space here) and the key "ref_i d" (read "ref_id").
SEED_POLL = (
    b'{"error_code":200,"sn":"xxxx-xxxx-xxxx-xxxx","result":[{"port":\n0,"user_id":1,'
    b'"number":"12351","time":"2014-12-21 12:06:01","status":"SENT_OK","count":3, '
    b'"succ_count":3,  "ref_id":12,"imsi":"460004642148063"}]}'
)
SEED_PUSH = (
    b'{"sn":"xxxx-xxxx-xxxx-xxxx","sms_result":[{"port":1,"number":" 10086","time":"2016-07-12 '
    b'01:46:02","status":"DELIVERED","count":1,"succ_count":1,"ref_id":215,'
    b'"imsi":"460004642148063"}]}'
)
DELIVER = (
    b'{"sn":"gw-1","sms_deliver_status":[{"port":2,"number":"+8613800138000",'
    b'"time":"2024-05-01 08:00:00","ref_id":17,"status_code":0,"imsi":"460004642148063"},'
    b'{"port":2,"number":"13800138001","time":"2024-05-01 08:00:01","ref_id":18,"status_code":70}]}'
)


def one(body: bytes, endpoint: str = "push", ctx: RecordContext = CTX) -> ReceiptEvent:
    return decode_one(ultiroam, body, endpoint, ctx)


def result(**fields: Any) -> bytes:
    item = {"port": 1, "number": "+8613800138000", "time": "2024-05-01 08:00:00",
            "status": "DELIVERED", "ref_id": 7}  # fmt: skip
    item.update(fields)
    return json.dumps({"sn": SN, "sms_result": [item]}).encode()


def deliver(code: int, **fields: Any) -> bytes:
    item = {"port": 1, "number": "+8613800138000", "time": "2024-05-01 08:00:00",
            "ref_id": 7, "status_code": code}  # fmt: skip
    item.update(fields)
    return json.dumps({"sn": SN, "sms_deliver_status": [item]}).encode()


def test_seed_poll_example() -> None:
    assert ultiroam.sniff(SEED_POLL) == "query_sms_result"
    e = one(SEED_POLL, "query_sms_result")
    assert e.v == 1
    assert e.provider == "ultiroam"
    assert e.account == SN
    assert e.channel == "poll"
    assert e.endpoint == "ultiroam.query_sms_result"
    assert e.message_key == f"{SN}|0|12351|12|2014-12-21 12:06:01"
    assert e.message_id is None
    assert e.batch_id is None
    assert e.client_ref == "1"
    assert e.recipient == "12351"
    assert e.recipient_raw == "12351"
    assert e.status == "SENT"
    assert e.finality == "intermediate"
    assert e.provider_status == "SENT_OK"
    assert e.provider_code is None
    assert e.provider_message is None
    assert e.segments == 3
    assert e.segments_ok == 3
    assert e.opt_out is None
    assert e.occurred_at is None  # `time` is the send time
    assert e.occurred_at_raw is None
    assert e.sent_at == "2014-12-21T12:06:01Z"
    assert e.time_zone == "UTC"
    assert e.observed_at == "2023-11-14T22:13:20Z"
    assert (e.source.topic, e.source.partition, e.source.offset, e.source.index) == ("raw", 1, 9, 0)
    assert len(e.event_id) == 32 and int(e.event_id, 16) >= 0


def test_seed_push_example() -> None:
    assert ultiroam.sniff(SEED_PUSH) == "sms_result"
    e = one(SEED_PUSH, "sms_result")
    assert (e.channel, e.endpoint, e.account) == ("push", "ultiroam.sms_result", SN)
    assert e.message_key == f"{SN}|1|10086|215|2016-07-12 01:46:02"
    assert (e.recipient, e.recipient_raw) == ("10086", " 10086")
    assert (e.status, e.finality, e.provider_status) == ("DELIVERED", "final", "DELIVERED")
    assert (e.segments, e.segments_ok, e.client_ref) == (1, 1, None)  # user_id missing in pushes
    assert (e.sent_at, e.time_zone, e.occurred_at) == ("2016-07-12T01:46:02Z", "UTC", None)


def test_deliver_status_example() -> None:
    assert ultiroam.sniff(DELIVER) == "sms_deliver_status"
    a, b = ultiroam.decode(DELIVER, "push", CTX)
    assert (a.channel, a.endpoint, a.account) == ("push", "ultiroam.sms_deliver_status", "gw-1")
    assert a.message_key == "gw-1|2|+8613800138000|17|2024-05-01 08:00:00"
    assert (a.status, a.provider_status, a.provider_code) == ("DELIVERED", "0", "0")
    assert (a.segments, a.segments_ok, a.client_ref, a.provider_message) == (None, None, None, None)
    assert (a.sent_at, a.time_zone, a.occurred_at, a.occurred_at_raw) == (
        "2024-05-01T08:00:00Z",
        "UTC",
        None,
        None,
    )
    assert (b.status, b.provider_status, b.recipient, b.source.index) == (
        "UNDELIVERED",
        "70",
        "13800138001",
        1,
    )


def test_the_same_message_keys_match_across_forms() -> None:
    # The key uses only fields all three forms carry, so a result and its delivery report meet.
    poll = json.dumps({"error_code": 200, "sn": SN, "result": [
        {"port": 1, "user_id": 5, "number": "+8613800138000", "time": "2024-05-01 08:00:00",
         "status": "SENT_OK", "count": 1, "succ_count": 1, "ref_id": 7}]}).encode()  # fmt: skip
    keys = {one(poll).message_key, one(result()).message_key, one(deliver(0)).message_key}
    assert keys == {f"{SN}|1|+8613800138000|7|2024-05-01 08:00:00"}


# --- every row of the status tables ------------------------------------------------------------


# The contract's Ultiroam `status` rule, case by case.
STATUS_ROWS = [
    ("SENDING", "PENDING", "intermediate"),
    ("SENT_OK", "SENT", "intermediate"),
    ("DELIVERED", "DELIVERED", "final"),
    ("FAILED", "FAILED", "final"),
]


@pytest.mark.parametrize(("status", "expected", "finality"), STATUS_ROWS)
@pytest.mark.parametrize("key", ["result", "sms_result"])
def test_status_table(status: str, expected: str, finality: str, key: str) -> None:
    item = {"port": 0, "number": "10086", "time": "2024-05-01 08:00:00", "status": status,
            "ref_id": 1}  # fmt: skip
    e = one(json.dumps({"error_code": 200, "sn": SN, key: [item]}).encode())
    assert (e.status, e.finality, e.provider_status) == (expected, finality, status)


def test_every_status_of_the_table_has_a_case() -> None:
    """A row added to the product's table must come with a case from the documents above."""
    assert set(ultiroam._STATUS) <= {status for status, _, _ in STATUS_ROWS}


def test_unmapped_status_is_unknown_and_counted() -> None:
    before = UNMAPPED_STATUSES["ultiroam"]
    e = one(result(status="SENT_NOK"))
    assert (e.status, e.provider_status, e.finality) == ("UNKNOWN", "SENT_NOK", "soft_final")
    assert UNMAPPED_STATUSES["ultiroam"] == before + 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, "DELIVERED"), (1, "DELIVERED"), (31, "DELIVERED"),
        (32, "SENT"), (48, "SENT"), (63, "SENT"),
        (64, "UNDELIVERED"), (70, "UNDELIVERED"), (95, "UNDELIVERED"),
        (96, "EXPIRED"), (100, "EXPIRED"), (127, "EXPIRED"),
        (128, "UNDELIVERED"), (200, "UNDELIVERED"), (255, "UNDELIVERED"),
    ],
)  # fmt: skip
def test_tp_status_ranges(code: int, expected: str) -> None:
    e = one(deliver(code))
    assert (e.status, e.provider_status, e.provider_code) == (expected, str(code), str(code))


def test_tp_status_changes_only_at_the_range_bounds() -> None:
    """With the cases above, pins every code: the contract's ranges start at 0, 32, 64, 96, 128."""
    table = ultiroam._TP_STATUS
    assert len(table) == 256
    assert [c for c in range(1, 256) if table[c] != table[c - 1]] == [32, 64, 96, 128]


@pytest.mark.parametrize("code", [-1, 256, 1000, 2**64, -(2**70)])
def test_tp_status_out_of_range_is_unmapped(code: int) -> None:
    before = UNMAPPED_STATUSES["ultiroam"]
    e = one(deliver(code))
    assert (e.status, e.provider_status, e.provider_code) == ("UNKNOWN", str(code), str(code))
    assert UNMAPPED_STATUSES["ultiroam"] == before + 1


# --- phone rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "recipient"),
    [
        ("+8613800138000", "+8613800138000"),  # `+`-prefixed: kept
        (" +44 7700-900 123 ", "+447700900123"),  # separators stripped before deciding
        ("+1 (202) 555-0123", "+12025550123"),
        (" 10086", "10086"),  # no country from the gateway: trimmed raw
        ("8613800138000", "8613800138000"),  # no `+`: no rule applies
        ("0612345678", "0612345678"),
        ("138 0013 8000", "138 0013 8000"),  # trimmed, not cleaned, when no rule applies
        ("+CALLME", "+CALLME"),
    ],
)
def test_phone_rules(number: str, recipient: str) -> None:
    e = one(result(number=number))
    assert (e.recipient, e.recipient_raw) == (recipient, number)
    assert e.message_key == f"{SN}|1|{recipient}|7|2024-05-01 08:00:00"


# --- time zones --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "sent_at", "zone"),
    [
        (None, "2024-05-01T08:00:00Z", "UTC"),  # the default: operators must configure it
        ("UTC", "2024-05-01T08:00:00Z", "UTC"),
        ("Asia/Shanghai", "2024-05-01T00:00:00Z", "Asia/Shanghai"),
        ("Europe/Paris", "2024-05-01T06:00:00Z", "Europe/Paris"),  # summer time, UTC+2
        ("America/Sao_Paulo", "2024-05-01T11:00:00Z", "America/Sao_Paulo"),
    ],
)
@pytest.mark.parametrize("make", [result, lambda **kw: deliver(0, **kw)])
def test_time_zone_rules(tz: str | None, sent_at: str, zone: str, make: Any) -> None:
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, tz=tz)
    e = one(make(), ctx=ctx)
    assert (e.sent_at, e.time_zone, e.occurred_at, e.occurred_at_raw) == (sent_at, zone, None, None)


def test_winter_time_in_paris() -> None:
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, tz="Europe/Paris")
    assert one(result(time="2024-01-15 12:30:05"), ctx=ctx).sent_at == "2024-01-15T11:30:05Z"


@pytest.mark.parametrize(
    "time",
    [
        "2016-07-12 01:46:02",
        "2016-07-12\n01:46:02",
        "2016-07-12T01:46:02",
        " 2016-07-12  01:46:02 ",
    ],
)
def test_identity_key_time_is_canonical(time: str) -> None:
    # Gateways (and the wiki) break between date and time differently in push and poll: the
    # key holds the canonical form, so both get one key.
    e = one(result(time=time))
    assert e.sent_at == "2016-07-12T01:46:02Z"
    assert e.message_key.endswith("|2016-07-12 01:46:02")


@pytest.mark.parametrize("time", ["", "  "])
def test_identity_empty_time_is_invalid(time: str) -> None:
    with pytest.raises(MalformedBody, match="time"):
        ultiroam.decode(result(time=time), "push", CTX)


@pytest.mark.parametrize("time", ["2024-05-01", "2024-13-01 00:00:00", "yesterday", "0"])
def test_times_bad_time_costs_no_receipt(time: str) -> None:
    e = one(result(time=time))
    assert (e.sent_at, e.time_zone, e.occurred_at_raw) == (None, None, None)
    assert e.message_key.endswith(f"|{time}")


def test_unknown_tz_header() -> None:
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, tz="Mars/Olympus")
    with pytest.raises(MalformedBody, match="Mars/Olympus"):
        ultiroam.decode(result(), "push", ctx)


# --- ids, account ------------------------------------------------------------------------------


def test_ids_and_counts() -> None:
    big = 2**64 + 1
    e = one(result(user_id=big, port="3", ref_id="255", count=4, succ_count=2))
    assert (e.client_ref, e.segments, e.segments_ok) == (str(big), 4, 2)
    assert e.message_key == f"{SN}|3|+8613800138000|255|2024-05-01 08:00:00"
    assert one(result(user_id="")).client_ref is None
    assert one(result(user_id="abc")).client_ref == "abc"


def test_account_header_wins() -> None:
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, account="hdr")
    e = one(result(), ctx=ctx)
    assert e.account == "hdr"
    assert e.message_key.startswith(f"{SN}|")  # the key keeps the body's sn
    item = json.loads(result())["sms_result"][0]
    assert one(json.dumps({"sn": 12345, "sms_result": [item]}).encode()).account == "12345"


def test_endpoint_aliases_and_body_decides() -> None:
    for alias in (
        "query_sms_result",
        "sms_result",
        "sms_deliver_status",
        "poll",
        "push",
        "callback",
    ):
        assert one(SEED_POLL, alias).endpoint == "ultiroam.query_sms_result"
        assert one(SEED_PUSH, alias).endpoint == "ultiroam.sms_result"
        assert one(deliver(0), alias).endpoint == "ultiroam.sms_deliver_status"
    with pytest.raises(UnknownFormat, match="send_sms"):
        ultiroam.decode(SEED_POLL, "send_sms", CTX)


def test_empty_lists() -> None:
    assert ultiroam.decode(b'{"error_code":200,"sn":"x","result":[]}', "poll", CTX) == []
    assert ultiroam.decode(b'{"sn":"x","sms_deliver_status":[]}', "push", CTX) == []


# --- provider errors, non-receipts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"error_code":400,"sn":"x"}', "400: request format is not valid"),
        (b'{"error_code":413}', "413: more than 32 numbers"),
        (b'{"error_code":500,"sn":"x","result":[]}', "500: other error"),
        (b'{"error_code":401}', "401"),
        # The error class wins even when the rest of the body is nonsense.
        (b'{"error_code":500,"result":"none"}', "500"),
        (b'{"error_code":"500","sn":5.5,"result":{"x":1}}', "500"),
    ],
)
def test_provider_error(body: bytes, match: str) -> None:
    assert ultiroam.sniff(body) == "query_sms_result"
    with pytest.raises(ProviderError, match=match):
        ultiroam.decode(body, "query_sms_result", CTX)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (
            b'{"sn":"x","sms":[{"incoming_sms_id":1,"port":1,"number":"10086","text":"hi"}]}',
            "ultiroam.sms",
        ),
        (b'{"sn":"x","ussd":[{"port":1,"text":"balance 5"}]}', "ultiroam.ussd"),
        (b'{"sn":"x","port_status":[{"port":1,"status":"up"}]}', "ultiroam.other"),
        (b'{"sn":"x","sms":[{"port":1,"content":"hi"}]}', "ultiroam.sms"),
        (b'{"ussd":[],"sn":"x"}', "ultiroam.ussd"),
        (b'{"sn":"x"}', "ultiroam.other"),
        (b'{"sn":"x","Weird Key!":1}', "ultiroam.other"),
        (b'{"sn":"x","' + b"k" * 100 + b'":1}', "ultiroam.other"),
    ],
)
def test_not_receipts(body: bytes, kind: str) -> None:
    assert ultiroam.sniff(body) == "push"
    with pytest.raises(NotReceipts) as info:
        ultiroam.decode(body, "push", CTX)
    assert info.value.kind == kind


# --- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "endpoint"),
    [
        (SEED_POLL, "query_sms_result"),
        (SEED_PUSH, "sms_result"),
        (DELIVER, "sms_deliver_status"),
        (b' {"sn" : "x", "result" : []}', "query_sms_result"),
        (b'{"error_code":500}', "query_sms_result"),
        (b'{"sn":"x","ussd":[]}', "push"),
    ],
)
def test_sniff_own_formats(body: bytes, endpoint: str) -> None:
    assert ultiroam.sniff(body) == endpoint


@pytest.mark.parametrize("body", bodies_of_other_providers("ultiroam"))
def test_sniff_rejects_other_providers(body: bytes) -> None:
    assert ultiroam.sniff(body) is None


def test_sniff_finds_keys_beyond_the_head() -> None:
    pad = '"sn":"x","imsi":"' + "4" * 2000 + '",'
    assert ultiroam.sniff(("{" + pad + '"sms_result":[]}').encode()) == "sms_result"
    assert ultiroam.sniff(("{" + pad + '"sms_deliver_status":[]}').encode()) == "sms_deliver_status"
    assert ultiroam.sniff(("{" + pad + '"result":[]}').encode()) == "query_sms_result"
    assert ultiroam.sniff(("{" + pad + '"sms":[]}').encode()) == "push"
    assert ultiroam.sniff(('{"x":"' + "4" * 2000 + '","sn":"x"}').encode()) == "push"


def test_sniff_ignores_keys_inside_strings() -> None:
    body = b'{"Response":{"Error":{"Code":"X","Message":"saw \\"sn\\": 5, \\"sms_result\\":"}}}'
    assert ultiroam.sniff(body) is None
    assert ultiroam.sniff(b'[{"sn":"x"}]') is None


# --- hostile and malformed inputs --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"{" * 100_000,
        b'{"sn":"x","sms_result":' + b"[" * 100_000,
        b'{"sn":"x","sms":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"error_code":' + b"[" * 100_000,
        b"\xff\xfe{}",
        b'{"sn":"\xc3\x28","sms_result":[]}',
        b"",
        b"null",
        b"[]",
        b'"sn"',
        b'{"error_code":200}',  # neither sn nor a receipt list
        b'{"error_code":200,"sn":"x"}',  # a poll answer without its result
        b'{"error_code":200,"result":[]}',  # receipts without sn
        b'{"sn":"x","sms_result":null}',
        b'{"sn":"x","result":{"port":1}}',
        b'{"sn":"x","sms_result":[{"port":1,"number":"1","time":"2024-05-01 08:00:00",'
        b'"ref_id":1}]}',  # no status
        b'{"sn":"x","sms_result":[{"number":"1","time":"2024-05-01 08:00:00","status":"SENT_OK",'
        b'"ref_id":1}]}',  # no port
        b'{"sn":"x","sms_deliver_status":[{"port":1,"number":"1","time":"2024-05-01 08:00:00",'
        b'"ref_id":1}]}',  # no status_code
        b'{"sn":"x","sms_deliver_status":[{"port":1,"number":"1","time":"2024-05-01 08:00:00",'
        b'"ref_id":1,"status_code":"zero"}]}',  # wrong type
        b'{"sn":"x","sms_deliver_status":[{"port":1,"number":"1","time":"2024-05-01 08:00:00",'
        b'"ref_id":1,"status_code":1e400}]}',
        b'{"sn":"x","sms_result":[{"port":1,"number":1,"time":"2024-05-01 08:00:00",'
        b'"status":"SENT_OK","ref_id":1}]}',  # number as a number
        b'{"sn":"x","sms_result":[{"port":1,"number":"1","time":"2024-05-01 08:00:00",'
        b'"status":"SENT_OK","ref_id":1,"count":1e400}]}',
        b'{"sn":["x"],"sms_result":[]}',
        b'{"error_code":"two hundred","sn":"x","result":[]}',
        b'{"error_code":200.5,"sn":"x","result":[]}',
        b'{"sn":"x","sms_result":[{"port":1,"number":"1","time":"2024-05-01 08:00:00"',  # cut
    ],
)
def test_malformed(body: bytes) -> None:
    for endpoint in ("push", "query_sms_result"):
        with pytest.raises(MalformedBody):
            ultiroam.decode(body, endpoint, CTX)


def test_time_beyond_year_9999_in_utc() -> None:
    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0, tz="America/New_York")
    assert one(result(time="9999-12-31 23:00:00"), ctx=ctx).sent_at is None


# --- property tests ----------------------------------------------------------------------------

# The property tests need only the data: the product's tables, checked case by case above.
TABLE = dict(ultiroam._STATUS)
FOLDED = {folded(k): v for k, v in TABLE.items()}
ZONES = [None, "UTC", "Asia/Shanghai", "Europe/Paris", "America/Sao_Paulo", "Pacific/Chatham"]

digits = st.text("0123456789", min_size=1, max_size=14)


def _tp(code: int) -> str:
    return ultiroam._TP_STATUS[code]


@st.composite
def numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(number, expected recipient)."""
    kind = draw(st.sampled_from(["plus", "digits", "short", "junk"]))
    if kind == "plus":
        clean = "+" + draw(digits)
        cut = draw(st.integers(2, len(clean)))
        pad = draw(st.sampled_from(["", " ", "  "]))
        return pad + clean[:cut] + draw(st.sampled_from(["", " ", "-"])) + clean[cut:] + pad, clean
    if kind == "digits":
        number = draw(digits)
        return number, number
    if kind == "short":
        number = draw(st.text("0123456789", min_size=3, max_size=6))
        return " " + number, number
    junk = draw(text.filter(lambda t: any(c.isalpha() for c in t)))  # never a number
    return junk, junk.strip()


@st.composite
def times(draw: st.DrawFn) -> tuple[str, datetime]:
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2037, 12, 31)))
    moment = moment.replace(microsecond=0)
    return moment.strftime("%Y-%m-%d %H:%M:%S"), moment


def _utc(moment: datetime, zone: str) -> str:
    return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def items(draw: st.DrawFn, deliver: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(wire item, expected event fields except sent_at, which depends on the zone)."""
    number, _ = draw(numbers())
    # The phone rules are tested on their own (test_rules.py): here, that they are applied.
    recipient = e164(number)
    when, moment = draw(times())
    port = draw(st.integers(0, 31) | st.integers(2**64, 2**70) | key_ids)
    ref_id = draw(st.integers(0, 255) | key_ids)
    wire: dict[str, Any] = {"port": port, "number": number, "time": when, "ref_id": ref_id}
    expected: dict[str, Any] = {
        "recipient": recipient,
        "recipient_raw": number,
        "message_key_tail": f"{key_text(port)}|{recipient}|{key_text(ref_id)}|{when}",
        "moment": moment,
        "segments": None,
        "segments_ok": None,
        "client_ref": None,
    }
    if deliver:
        code = draw(st.integers(0, 255))
        wire["status_code"] = code
        expected |= {"status": _tp(code), "provider_status": str(code), "provider_code": str(code)}
    else:
        status = draw(st.sampled_from(list(TABLE)) | text)
        wire["status"] = status
        expected |= {
            "status": FOLDED.get(folded(status), "UNKNOWN"),
            "provider_status": status,
            "provider_code": None,
        }
        if draw(st.booleans()):
            user = draw(ids)
            wire["user_id"] = user
            expected["client_ref"] = id_text(user)
        if draw(st.booleans()):
            wire["count"] = expected["segments"] = draw(st.integers(0, 2**70))
        if draw(st.booleans()):
            wire["succ_count"] = expected["segments_ok"] = draw(st.integers(0, 2**70))
    if draw(st.booleans()):
        wire["imsi"] = draw(digits)
    for key, value in draw(st.dictionaries(st.sampled_from(["x_a", "smsc", "Extra"]), ids)).items():
        wire[key] = value  # unknown fields are ignored
    return wire, expected


FORMS = {
    "query_sms_result": ("result", False, "poll"),
    "sms_result": ("sms_result", False, "push"),
    "sms_deliver_status": ("sms_deliver_status", True, "push"),
}


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, Any, list[Any], bytes]:
    form = draw(st.sampled_from(list(FORMS)))
    key, is_deliver, _ = FORMS[form]
    sn = draw(key_ids)
    generated = draw(st.lists(items(is_deliver), max_size=5))
    body: dict[str, Any] = {"sn": sn, key: [w for w, _ in generated], "x_more": {"a": [1]}}
    if form == "query_sms_result":
        body["error_code"] = 200
    raw = json.dumps(body, ensure_ascii=draw(st.booleans())).encode()
    return form, sn, generated, raw


@PROPERTY
@given(case=bodies(), tz=st.sampled_from(ZONES), header=st.sampled_from(["push", "poll", None]))
def test_property_valid_bodies(case: tuple[str, Any, list[Any], bytes], tz: str | None,
                               header: str | None) -> None:  # fmt: skip
    form, sn, generated, raw = case
    assert ultiroam.sniff(raw) == form
    ctx = RecordContext(topic="t", partition=0, offset=5, timestamp_ms=0, tz=tz)
    events = ultiroam.decode(raw, header or form, ctx)
    zone = tz or "UTC"
    assert len(events) == len(generated)
    for i, (event, (_, exp)) in enumerate(zip(events, generated, strict=True)):
        assert event.endpoint == f"ultiroam.{form}"
        assert event.channel == FORMS[form][2]
        assert event.account == key_text(sn)
        assert event.message_key == f"{key_text(sn)}|{exp['message_key_tail']}"
        assert event.sent_at == _utc(exp["moment"], zone)
        assert event.time_zone == zone
        assert event.occurred_at is None and event.occurred_at_raw is None
        assert event.source.index == i
        for field in ("recipient", "recipient_raw", "status", "provider_status", "provider_code",
                      "segments", "segments_ok", "client_ref"):  # fmt: skip
            assert getattr(event, field) == exp[field], field
        msgspec.json.encode(event)


def mutated_bodies() -> st.SearchStrategy[bytes]:
    return mutated(
        bodies().map(lambda c: c[3]) | st.sampled_from([SEED_POLL, SEED_PUSH, DELIVER]),
        (*JUNK, b'"sn":'),
    )


@PROPERTY
@given(st.binary(max_size=300))
def test_property_arbitrary_bytes(body: bytes) -> None:
    survives(ultiroam, body, ("push", "query_sms_result"), CTX)


@PROPERTY
@given(mutated_bodies())
def test_property_mutated_bodies(body: bytes) -> None:
    survives(ultiroam, body, ("push", "query_sms_result"), CTX)


def test_push_and_poll_of_one_sms_share_the_key_whatever_the_wrapping() -> None:
    from pipeline.core.providers import ultiroam as module

    ctx = RecordContext(topic="t", partition=0, offset=0, timestamp_ms=0)
    item = '"port":0,"number":"+8613800138000","ref_id":12,"count":1,"succ_count":1'
    poll = (
        b'{"error_code":200,"sn":"s",'
        b'"result":[{%s,"time":"2014-12-21 12:06:01","status":"SENT_OK"}]}'
    )
    push = b'{"sn":"s","sms_result":[{%s,"time":"2014-12-21\\n\\n12:06:01","status":"DELIVERED"}]}'
    (a,) = module.decode(poll % item.encode(), "query_sms_result", ctx)
    (b,) = module.decode(push % item.encode(), "push", ctx)
    assert a.message_key == b.message_key == "s|0|+8613800138000|12|2014-12-21 12:06:01"
