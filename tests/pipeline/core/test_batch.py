"""The I/O-free core: routing, limits, dead letters, dedupe and the output record shape."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pipeline.core import (
    DEFAULT_RECORD_MAX_BYTES,
    Core,
    CoreConfig,
    InputRecord,
    ProviderRoute,
    parse_routes,
    record_size,
)
from pipeline.state import Window

GOLDEN = Path(__file__).parents[2] / "golden"
YUNPIAN = (GOLDEN / "yunpian/push.body").read_bytes()
TENCENT_POLL = (GOLDEN / "tencent/PullSmsSendStatus.body").read_bytes()


def record(
    value: bytes, headers: dict[str, str] | None = None, topic: str = "raw", offset: int = 0
) -> InputRecord:
    pairs = [(k, v.encode()) for k, v in (headers or {}).items()]
    return InputRecord(topic, 3, offset, 1_700_000_000_000 + offset, pairs, value)


def core(**config: object) -> Core[Window]:
    return Core(Window(1000, 3_600_000), CoreConfig(**config))  # type: ignore[arg-type]


def test_output_records_follow_the_kafka_contract() -> None:
    result = core().process([record(YUNPIAN, {"provider": "yunpian"})])
    assert len(result.outputs) == 5 and not result.dead_letters
    out = result.outputs[0]
    event = msgspec.json.decode(out.value)
    assert out.key == f"yunpian:{event['message_key']}".encode()
    assert dict(out.headers) == {
        "event_id": event["event_id"].encode(),
        "provider": b"yunpian",
        "status": event["status"].encode(),
    }
    assert out.timestamp_ms == 1_700_000_000_000
    assert event["source"] == {"topic": "raw", "partition": 3, "offset": 0, "index": 0}


def test_duplicates_across_and_within_batches() -> None:
    window = Window(1000, 3_600_000)  # core()'s
    c = Core(window, CoreConfig())
    first = c.process([record(YUNPIAN), record(YUNPIAN, offset=1)])
    assert len(first.outputs) == 5
    assert not c.process([record(YUNPIAN, offset=2)]).outputs
    assert sum(window.counters.duplicates) == 10


def test_oversized_body_is_dead_lettered_before_parsing() -> None:
    huge = b"sms_status=" + b"%5B" * (100 * 1024 * 1024 // 3)
    result = core().process([record(huge, {"provider": "yunpian"})])
    assert not result.outputs
    (dead,) = result.dead_letters
    assert dead.error_class == "BodyTooLarge"
    assert huge.startswith(dead.value) and len(dead.value) > 1_000_000
    assert record_size(dead.key, dead.value, dead.headers) <= DEFAULT_RECORD_MAX_BYTES
    assert dict(dead.headers)["error.original_size"] == str(len(huge)).encode()


def test_dead_letter_keeps_bytes_and_headers_and_says_why() -> None:
    bad = b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":'
    result = core().process([record(bad, {"provider": "tencent", "account": "a1"}, offset=42)])
    (dead,) = result.dead_letters
    headers = dict(dead.headers)
    assert dead.value == bad
    assert headers["provider"] == b"tencent" and headers["account"] == b"a1"
    assert headers["error.class"] == b"MalformedBody"
    assert b"truncated" in headers["error.message"]
    assert (headers["source.topic"], headers["source.partition"], headers["source.offset"]) == (
        b"raw",
        b"3",
        b"42",
    )


@pytest.mark.parametrize(
    ("value", "headers", "error_class"),
    [
        (b"hello", {}, "UnknownFormat"),
        (YUNPIAN, {"provider": "twilio"}, "UnknownFormat"),
        (
            b'{"RetCode": 230, "Message": "no", "Action": "GetUSMSSendReceiptResponse"}',
            {},
            "ProviderError",
        ),
        (
            b'{"success": false, "code": 10, "message": "Cl\xc3\xa9 API incorrecte"}',
            {},
            "ProviderError",
        ),
        (
            b'{"Response": {"Error": {"Code": "AuthFailure", "Message": "x"}, "RequestId": "r"}}',
            {},
            "ProviderError",
        ),
        (b'{"error_code": 413, "sn": "x"}', {}, "ProviderError"),
        (
            b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a 'aaaa'>]><result>&a;</result>",
            {},
            "UnsafeXml",
        ),
        (YUNPIAN, {"provider": "yunpian", "tz": "Mars/Base"}, "MalformedBody"),
    ],
)
def test_error_classes(value: bytes, headers: dict[str, str], error_class: str) -> None:
    c = core()
    (dead,) = c.process([record(value, headers)]).dead_letters
    assert dead.error_class == error_class
    assert c.stats.dead_letters[error_class] == 1


def test_routing_order_headers_then_topic_map_then_shape() -> None:
    c = core(topic_routes=parse_routes({"raw-tencent": "tencent.PullSmsSendStatus"}))
    # The topic says tencent, the header says yunpian: the header wins.
    assert c.process([record(YUNPIAN, {"provider": "yunpian"}, topic="raw-tencent")]).outputs
    # No header: the topic mapping decides (and a Yunpian body is then not a Tencent body).
    (dead,) = c.process([record(YUNPIAN, topic="raw-tencent", offset=1)]).dead_letters
    assert dead.error_class in ("MalformedBody", "UnknownFormat")
    # Neither: the shape.
    assert c.process([record(TENCENT_POLL, topic="other", offset=2)]).outputs


def test_time_zones_header_then_config_then_default() -> None:
    def first_time(c: Core[Window], headers: dict[str, str]) -> tuple[str, str]:
        out = c.process([record(YUNPIAN, headers)]).outputs[0]
        event = msgspec.json.decode(out.value)
        return event["occurred_at"], event["time_zone"]

    assert first_time(core(), {}) == ("2024-05-01T01:30:00Z", "Asia/Shanghai")
    zones = {"yunpian": "UTC", "yunpian/acme": "Europe/Paris"}
    assert first_time(core(time_zones=zones), {}) == ("2024-05-01T09:30:00Z", "UTC")
    assert first_time(core(time_zones=zones), {"account": "acme"}) == (
        "2024-05-01T07:30:00Z",
        "Europe/Paris",
    )
    assert first_time(core(time_zones=zones), {"account": "acme", "tz": "Asia/Tokyo"}) == (
        "2024-05-01T00:30:00Z",
        "Asia/Tokyo",
    )


def test_non_receipts_are_skipped_and_counted() -> None:
    c = core()
    reply = b'{"Response":{"PullSmsReplyStatusSet":[],"RequestId":"r"}}'
    result = c.process([record(reply)])
    assert not result.outputs and not result.dead_letters
    assert c.stats.skipped["tencent.reply"] == 1


def test_bad_configuration_fails_at_start() -> None:
    with pytest.raises(ValueError, match="twilio"):
        parse_routes({"raw": "twilio.push"})
    assert parse_routes({"raw": "yunpian"}) == {"raw": ProviderRoute("yunpian", None)}
    with pytest.raises(Exception, match="Mars/Base"):
        core(time_zones={"yunpian": "Mars/Base"})


def test_oversized_dead_letter_is_cut_and_says_so() -> None:
    body = b"{" + b"x" * 5000
    c = Core(Window(10, 1000), CoreConfig(dead_letter_max_bytes=1000))
    (dead,) = c.process([record(body, {"provider": "tencent"})]).dead_letters
    assert len(dead.value) > 500 and body.startswith(dead.value)
    assert record_size(dead.key, dead.value, dead.headers) <= 1000
    assert dict(dead.headers)["error.original_size"] == b"5001"


def test_a_record_stamped_years_ahead_does_not_move_the_window_clock() -> None:
    """Replays with one record stamped ten years ahead: the clock stays at record time within
    the tolerance, so the window keeps its content; the skew is counted."""
    hour = 3_600_000
    wall = 1_700_000_000_000
    window = Window(1000, hour)
    c = Core(window, CoreConfig(clock_skew_tolerance_ms=300_000), wall_ms=lambda: wall)
    first = c.process([record(YUNPIAN, {"provider": "yunpian"})])
    assert len(first.outputs) == 5
    ahead = record(YUNPIAN, {"provider": "yunpian"})._replace(timestamp_ms=wall + 10 * 8760 * hour)
    replay = c.process([ahead, record(YUNPIAN, {"provider": "yunpian"}, offset=1)])
    assert replay.outputs == [] and sum(window.counters.duplicates) == 10
    assert window.counters.clock_skew == 1 and sum(window.counters.expired) == 0
    # Half an hour later (record time and wall clock), still remembered.
    wall += hour // 2
    late = record(YUNPIAN, {"provider": "yunpian"})._replace(timestamp_ms=wall)
    assert c.process([late]).outputs == []
