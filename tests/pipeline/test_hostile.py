"""Hostile input without I/O, one section per rule: an event no output record can hold is
dead-lettered and the rest goes on; XML structure is checked while parsing; a partly bad body
emits its good reports; percent-decoding equals `unquote_plus`; metric labels come from closed
sets; dead letters are keyed by their source record; the embedded run stops before writing when
its input is missing; invalid UTF-8 in a skipped field makes the body malformed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import urllib.parse
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import (
    DEFAULT_RECORD_MAX_BYTES,
    Core,
    CoreConfig,
    DeadLetter,
    InputRecord,
    dead_letter,
    record_size,
)
from pipeline.core.normalise import UNMAPPED_STATUSES, RecordContext
from pipeline.core.providers import REGISTRY, SKIP_KINDS, smspartner
from pipeline.core.providers.yunpian import percent_decode
from pipeline.errors import BodyTooLarge, MalformedBody
from pipeline.kafka import partition_for
from pipeline.state import Window

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/golden"
CTX = RecordContext(topic="raw", partition=0, offset=0, timestamp_ms=0, account=None, tz=None)


def record(
    value: bytes, headers: list[tuple[str, bytes]] | None = None, offset: int = 7
) -> InputRecord:
    return InputRecord("raw", 2, offset, 1_700_000_000_000, headers or [], value)


def core(**config: Any) -> Core[Window]:
    return Core(Window(100_000, 3_600_000), CoreConfig(**config))


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


# -- XML structure checked while parsing -----

_HEAD = b"<result><entry>true</entry><entry>200</entry><entry>m1</entry>"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<result>" + b"<a/>" * (2 * 1024 * 1024 - 4) + b"</result>", "<a> where an <entry>"),
        (_HEAD + b"<entry/>" * (1024 * 1024 - 16) + b"</result>", "more than one empty"),
        (_HEAD + b"<entry>" + b"<entry>x</entry>" * 500_000 + b"</entry></result>", "fields"),
        (_HEAD + b"<entry>" * 200_000 + b"</entry>" * 200_000 + b"</result>", "deeper"),
    ],
    ids=["8MB-of-a", "empty-entries", "flat-fields", "deep"],
)
def test_xml_structure_checked_while_parsing(body: bytes, message: str) -> None:
    """The parse stops at the first wrong element: no tree of the body is ever built (before:
    338 MB and 7 s for 8 MB of `<a/>`)."""
    tracemalloc.start()
    try:
        with pytest.raises(MalformedBody, match=message):
            smspartner.decode(body, "bulk-status", CTX)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while refusing an 8 MB body"


def test_valid_xml_still_decodes() -> None:
    rows = b"".join(
        b"<entry><entry>+3360000%04d</entry><entry>Delivered</entry><entry>0</entry>"
        b"<entry>1700000000</entry></entry>" % i
        for i in range(3)
    )
    for body in (_HEAD + b"<entry>" + rows + b"</entry></result>", _HEAD + rows + b"</result>"):
        events = smspartner.decode(body, "bulk-status", CTX)
        assert [e.recipient for e in events] == [f"+3360000{i:04d}" for i in range(3)]


# -- a partly bad body emits its good reports -----


def _ultiroam_deliveries(n: int) -> list[dict[str, Any]]:
    return [
        {"port": 1, "number": f"+8613800{i:06d}", "time": "2024-01-01 00:00:00", "ref_id": i,
         "status_code": 0}
        for i in range(n)
    ]  # fmt: skip


def _with_bad(name: str, bad_at: int) -> tuple[str, bytes, int]:
    """A golden JSON body with report `bad_at` replaced by a number; (provider, body, reports)."""
    provider = name.split("/")[0]
    obj = json.loads(golden(name + ".body"))
    if isinstance(obj, list):
        reports = obj
    elif "Response" in obj:
        reports = obj["Response"]["PullSmsSendStatusSet"]
    elif "Data" in obj:
        reports = obj["Data"][0]["ReceiptSet"] if "ReceiptSet" in obj["Data"][0] else obj["Data"]
    elif "StatutResponse_List" in obj:
        reports = obj["StatutResponse_List"]
    else:
        reports = obj["sms_result"]
    reports[bad_at] = 42
    return provider, json.dumps(obj).encode(), len(reports)


@pytest.mark.parametrize(
    "name",
    [
        "tencent/callback",
        "tencent/PullSmsSendStatus",
        "uspeedo/GetUSMSSendReceipt",
        "uspeedo/push",
        "smspartner/bulk-status-json",
        "ultiroam/sms_result",
    ],
)
def test_partial_body_emits_good_reports(name: str) -> None:
    provider, body, n = _with_bad(name, 1)
    whole = core().process([record(golden(name + ".body"), [("provider", provider.encode())])])
    result = core().process([record(body, [("provider", provider.encode())])])
    expected = [o for o in whole.outputs if json.loads(o.value)["source"]["index"] != 1]
    assert [o.value for o in result.outputs] == [o.value for o in expected]
    (dead,) = result.dead_letters
    headers = dict(dead.headers)
    assert dead.error_class == "PartialBody" and dead.value == body
    assert headers["error.class"] == b"PartialBody" and headers["error.reports"] == b"1"
    # The reason and the source stay the last five headers, as readers expect.
    assert [k for k, _ in dead.headers][-5:] == [
        "error.class",
        "error.message",
        "source.topic",
        "source.partition",
        "source.offset",
    ]
    assert n > 1


def test_ultiroam_partial_and_unmapped_status_code() -> None:
    items = _ultiroam_deliveries(100)
    items[17]["status_code"] = "x"  # a string where a number belongs
    items[40]["status_code"] = 256  # not a TP-Status: unmapped, not an error
    items[41]["port"] = [1]
    body = json.dumps({"sn": "gw", "sms_deliver_status": items}).encode()
    before = UNMAPPED_STATUSES["ultiroam"]
    c = core()
    result = c.process([record(body, [("provider", b"ultiroam")])])
    events = [json.loads(o.value) for o in result.outputs]
    assert [e["source"]["index"] for e in events] == [i for i in range(100) if i not in (17, 41)]
    (unknown,) = [e for e in events if e["source"]["index"] == 40]
    assert (unknown["status"], unknown["provider_status"]) == ("UNKNOWN", "256")
    assert UNMAPPED_STATUSES["ultiroam"] == before + 1
    (dead,) = result.dead_letters
    assert dict(dead.headers)["error.reports"] == b"17,41"
    assert c.stats.dead_letters == {"PartialBody": 1}
    assert sum(c.stats.events_out.values()) == 98 == sum(c.stats.receipts_in.values())


def test_wholly_bad_body_keeps_its_class() -> None:
    items: list[Any] = [42, "x", None]
    body = json.dumps({"sn": "gw", "sms_result": items}).encode()
    result = core().process([record(body, [("provider", b"ultiroam")])])
    assert not result.outputs
    assert [d.error_class for d in result.dead_letters] == ["MalformedBody"]


def test_yunpian_partial_body() -> None:
    reports = [
        {"sid": i, "uid": "", "user_receive_time": "2024-01-01 00:00:00", "error_msg": "",
         "mobile": "13800138000", "report_status": "SUCCESS"}
        for i in range(5)
    ]  # fmt: skip
    reports[3]["sid"] = {"no": 1}
    body = b"sms_status=" + urllib.parse.quote(json.dumps(reports)).encode()
    result = core().process([record(body, [("provider", b"yunpian")])])
    assert [json.loads(o.value)["message_id"] for o in result.outputs] == ["0", "1", "2", "4"]
    assert dict(result.dead_letters[0].headers)["error.reports"] == b"3"


# -- percent-decoding --------------------------------------------------------------------

_FORM_CHARS = st.sampled_from([*"%+=_.-~ \n\r\t&abcXYZ019fF", "%%", "%2", "%G0", "é", "="])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_FORM_CHARS, st.text(max_size=3)), max_size=30))
def test_percent_decoding_equals_unquote_plus(pieces: list[str]) -> None:
    text = "".join(pieces)
    raw = text.encode()
    assert percent_decode(raw) == urllib.parse.unquote_to_bytes(raw.replace(b"+", b" "))
    assert percent_decode(raw).decode("utf-8", "replace") == urllib.parse.unquote_plus(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"100%%20sure", b"100% sure"),
        (b"%", b"%"),
        (b"a%2", b"a%2"),
        (b"%zz%41", b"%zzA"),
        (b"%=41", b"%=41"),
        (b"%\n41", b"%\n41"),
        (b"a=b+c%3d", b"a=b c="),
    ],
)
def test_bare_percent_is_literal(value: bytes, expected: bytes) -> None:
    assert percent_decode(value) == expected


# -- metric labels from closed sets -----


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=20), st.integers())
def test_label_values_come_from_closed_sets(keys: list[str], msg_type: int) -> None:
    """Attacker-chosen first keys, MsgTypes, providers and endpoints never mint a label."""
    bodies = [
        (json.dumps({"sn": "x", key: [1]}).encode(), [("provider", b"ultiroam")]) for key in keys
    ] + [
        (json.dumps({"MsgType": msg_type, "Data": []}).encode(), [("provider", b"uspeedo")]),
        (b"{}", [("provider", keys[0].encode())]),
        (b"{}", [("provider", b"tencent"), ("endpoint", keys[0].encode())]),
    ]
    c = core()
    c.process([record(body, headers, offset=i) for i, (body, headers) in enumerate(bodies)])
    assert set(c.stats.skipped) <= SKIP_KINDS
    assert set(c.stats.records_in) <= set(REGISTRY)
    known_classes = {"MalformedBody", "UnknownFormat", "ProviderError", "PartialBody"}
    assert set(c.stats.dead_letters) <= known_classes
    assert len(SKIP_KINDS) < 120


def test_many_distinct_kinds_stay_bounded() -> None:
    c = core()
    c.process(
        [
            record(json.dumps({"sn": "x", f"kind{i}": 1}).encode(), [("provider", b"ultiroam")], i)
            for i in range(5000)
        ]
    )
    assert c.stats.skipped == {"ultiroam.other": 5000}


# -- dead letters keyed by their source -----


def test_dead_letters_keyed_by_source() -> None:
    records = [record(b"junk", [("provider", b"tencent")], offset=n) for n in range(20)]
    keys = [d.key for d in core().process(records).dead_letters]
    assert keys == [f"raw:2:{n}".encode() for n in range(20)]
    # Keys that murmur2 spreads; that the sink writes them so is checked against the broker
    # (tests/integration/test_sink.py, dead letters spread by their keys).
    assert len({partition_for(k, 12) for k in keys}) > 5


# -- the embedded run's missing input -----


@pytest.mark.parametrize("kind", ["missing", "unreadable"])
def test_embedded_missing_input_stops_before_writing(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "missing.jsonl"
    if kind == "unreadable":
        source.symlink_to(source)  # a symlink loop: open() fails (ELOOP), even as root
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--from", str(source), "--to", str(out)],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and str(source) in lines[0], result.stderr
    assert not out.exists() and not (tmp_path / "out.jsonl.deadletter.jsonl").exists()


# -- invalid UTF-8 in skipped fields ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("tencent/callback", b'"ignored_\xff": 1, '),
        ("tencent/PullSmsSendStatus", b'"Skipped": "\xc3\x28", '),
        ("uspeedo/GetUSMSSendReceipt", b'"x": ["\xed\xa0\x80"], '),
        ("ultiroam/sms_result", b'"imsi\xfe": "1", '),
        ("smspartner/bulk-status-json", b'"extra": "\xf8\x88\x80\x80\x80", '),
    ],
)
def test_invalid_utf8_in_skipped_fields_is_malformed(name: str, where: bytes) -> None:
    provider = name.split("/")[0]
    body = golden(name + ".body")
    at = body.rindex(b"}")  # a skipped field at the end of the last object
    bad = body[:at] + b", " + where.rstrip(b", ") + body[at:]
    assert core().process([record(body, [("provider", provider.encode())])]).outputs
    result = core().process([record(bad, [("provider", provider.encode())])])
    assert not result.outputs
    assert [d.error_class for d in result.dead_letters] == ["MalformedBody"]


def test_yunpian_invalid_utf8_after_decoding() -> None:
    value = urllib.parse.quote('[{"sid":1,"mobile":"13800138000","report_status":"SUCCESS",')
    body = b"sms_status=" + value.encode() + b"%22x%22%3A%22%FF%22%7D%5D"
    with pytest.raises(MalformedBody):
        REGISTRY["yunpian"].decode(body, "push", CTX)


# -- the core's part: events no output record can hold -----


def _tencent_callback(n: int, description_at: dict[int, str]) -> bytes:
    return json.dumps(
        [
            {"user_receive_time": "2024-01-01 00:00:00", "nationcode": "86",
             "mobile": f"13800{i:06d}", "report_status": "SUCCESS", "errmsg": "DELIVRD",
             "description": description_at.get(i, "ok"), "sid": f"sid-{i}"}
            for i in range(n)
        ]
    ).encode()  # fmt: skip


def test_event_too_large_is_dead_lettered_and_good_events_go() -> None:
    body = _tencent_callback(5, {2: "x" * 3_000_000})
    c = core()
    result = c.process([record(body, [("provider", b"tencent")])])
    assert [json.loads(o.value)["source"]["index"] for o in result.outputs] == [0, 1, 3, 4]
    assert all(
        record_size(o.key, o.value, o.headers) <= DEFAULT_RECORD_MAX_BYTES for o in result.outputs
    )
    (dead,) = result.dead_letters
    headers = dict(dead.headers)
    assert dead.error_class == "EventTooLarge" and headers["error.reports"] == b"2"
    assert headers["error.original_size"] == str(len(body)).encode()
    assert body.startswith(dead.value)
    assert record_size(dead.key, dead.value, dead.headers) <= DEFAULT_RECORD_MAX_BYTES
    assert sum(c.stats.events_out.values()) == 4
    assert c.stats.dead_letters == {"EventTooLarge": 1}


def test_smspartner_long_status_and_control_byte_account() -> None:
    # Free text stays verbatim whatever its length (an id that long breaks the identity rule).
    long_status = "m" * 1_100_000
    sms = json.dumps(
        {"success": True, "code": 200, "message_id": "m1",
         "StatutResponse_List": [{"phoneNumber": "+33600000000", "status": long_status,
                                  "stopSMS": False, "date": "1700000000"}]}
    ).encode()  # fmt: skip
    control = bytes(range(1, 32)) * (200_000 // 31)
    yun = golden("yunpian/push.body")
    result = core().process(
        [
            record(sms, [("provider", b"smspartner")], offset=1),
            record(yun, [("provider", b"yunpian"), ("account", control)], offset=2),
        ]
    )
    assert not result.outputs
    assert [d.error_class for d in result.dead_letters] == ["EventTooLarge"] * 2
    for dead in result.dead_letters:
        assert record_size(dead.key, dead.value, dead.headers) <= DEFAULT_RECORD_MAX_BYTES


def test_output_limit_is_configurable() -> None:
    body = golden("yunpian/push.body")
    assert len(core().process([record(body)]).outputs) == 5
    result = core(output_max_bytes=600).process([record(body)])
    assert not result.outputs
    (dead,) = result.dead_letters
    assert dict(dead.headers)["error.reports"] == b"0-4"


def test_dead_letter_counts_header_bytes() -> None:
    """A 9 MB body with 100 KB of headers gives a dead letter under the limit."""
    body = b"{" + b"x" * 9_000_000
    headers = [(f"h{i}", b"v" * 1000) for i in range(100)]
    dead = dead_letter(record(body, headers), BodyTooLarge("too large"))
    assert record_size(dead.key, dead.value, dead.headers) <= DEFAULT_RECORD_MAX_BYTES
    assert dict(dead.headers)["h99"] == b"v" * 1000 and len(dead.value) > 800_000


def test_dead_letter_drops_original_headers_that_cannot_fit() -> None:
    headers = [("provider", b"tencent"), ("big", b"\x01" * 2_000_000), ("account", b"a1")]
    dead = dead_letter(record(b"{" * 100, headers), MalformedBody("bad"), 100_000)
    assert record_size(dead.key, dead.value, dead.headers) <= 100_000
    kept = dict(dead.headers)
    assert "big" not in kept and kept["provider"] == b"tencent" and kept["account"] == b"a1"
    assert kept["error.headers_dropped"] == b"1" and dead.value == b"{" * 100
    for name in ("error.class", "error.message", "source.topic", "source.offset"):
        assert name in kept


def test_huge_header_key_and_many_headers() -> None:
    headers = [("k" * 600_000, b"v")] + [(f"x{i}", b"y" * 100) for i in range(20_000)]
    dead = dead_letter(record(b"[" * 5_000_000, headers), MalformedBody("bad"))
    assert isinstance(dead, DeadLetter)
    assert record_size(dead.key, dead.value, dead.headers) <= DEFAULT_RECORD_MAX_BYTES
    assert len(dead.value) >= DEFAULT_RECORD_MAX_BYTES // 2 - 1024


def test_error_reports_header_is_bounded() -> None:
    items: list[Any] = _ultiroam_deliveries(60_000)
    for i in range(0, 60_000, 2):
        items[i] = 42
    body = msgspec.json.encode({"sn": "gw", "sms_deliver_status": items})
    result = core().process([record(body, [("provider", b"ultiroam")])])
    assert len(result.outputs) == 30_000
    (dead,) = result.dead_letters
    reports = dict(dead.headers)["error.reports"]
    assert reports.startswith(b"0,2,4,") and reports.endswith(b"...")
    assert record_size(dead.key, dead.value, dead.headers) <= DEFAULT_RECORD_MAX_BYTES
