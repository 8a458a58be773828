"""Thousands of hostile and malformed bodies mixed into good traffic: every one dead-lettered
with its reason, every good event out, and the processor never goes down."""

from __future__ import annotations

import base64
import json
import os
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable

import pytest
from aiokafka.structs import ConsumerRecord

from pipeline.core import DEFAULT_RECORD_MAX_BYTES, InputRecord, OutputRecord, record_size

from .conftest import (
    BIG,
    Proc,
    Spawn,
    Topics,
    check_dead_letters,
    check_outputs,
    corpus_records,
    create_topics,
    drain,
    expected,
    make_topics,
    plan,
    produce,
    run_args,
    wait_processed,
)
from .hostile import MIB, RawKey, hostile, raw_header_keys

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def process_all(
    bootstrap: str, topics: Topics, spawn: Callable[..., Proc]
) -> tuple[Proc, list[ConsumerRecord], list[ConsumerRecord]]:
    """One processor (batches of 500) through all of the raw topic: it, the output records and
    the dead letters."""
    proc = spawn(run_args(bootstrap, topics, extra=["--batch-max-records", "500"]))
    await wait_processed(bootstrap, topics, procs=[proc], timeout=120)
    return proc, await drain(bootstrap, topics.out), await drain(bootstrap, topics.dlq)


async def test_poison_is_dead_lettered_and_never_stops_the_processor(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    # The raw topic takes 9 MiB records (the ingress landed them); output and dead-letter topics
    # are at the broker's default limits (1 MiB).
    # It also takes stamps up to a week ahead: the output topic (default: 1 h) refuses those.
    raw_config = {"max.message.bytes": str(BIG), "message.timestamp.after.max.ms": "604800000"}
    topics = await make_topics(kafka_bootstrap, "poison", raw_config=raw_config)
    good = corpus_records(51, 10_000)
    bad = hostile(good, 2_000, seed=5, stamp=good[len(good) // 2].timestamp_ms, huge=3)
    kinds = Counter(kind for kind, _, _ in bad)
    assert len(kinds) == 10 and kinds["oversized"] == 3, kinds

    # Hostile bodies at random places of the good stream (which keeps its own order).
    rng = random.Random(9)
    slots = sorted(rng.randrange(len(good) + 1) for _ in bad)
    mixed, g = [], 0
    order = list(range(len(bad)))
    rng.shuffle(order)
    for slot, i in zip(slots, order, strict=True):
        mixed += good[g:slot]
        g = slot
        mixed.append(bad[i][2])
    mixed += good[g:]
    # Records that cannot be written or read: a valid receipt whose event no output record can
    # hold (a 3 MB Tencent `description`), one stamped 2 h ahead (its event carries that stamp),
    # and a record whose header key is not UTF-8 (aiokafka cannot read it): each is
    # dead-lettered, and the rest flows on.
    labels = ("provider", "endpoint")
    tencent = next(
        r for r in good if [dict(r.headers).get(k) for k in labels] == [b"tencent", b"callback"]
    )
    report = json.loads(tencent.value)[0]
    # Incompressible: the output topic's limit applies to compressed batches.
    report.update(description=base64.b64encode(os.urandom(2_250_000)).decode(), sid="huge:1")
    huge = tencent._replace(value=json.dumps([report]).encode())
    unreadable = tencent._replace(headers=[(RawKey(b"pro\xffvider"), b"tencent")], value=b"{}")
    report.update(description="fine", sid="ahead:1")
    now = int(time.time() * 1000)
    ahead = tencent._replace(value=json.dumps([report]).encode(), timestamp_ms=now + 7_200_000)
    mixed[len(mixed) // 3 : len(mixed) // 3] = [huge]
    mixed[len(mixed) // 2 : len(mixed) // 2] = [unreadable]
    mixed[2 * len(mixed) // 3 : 2 * len(mixed) // 3] = [ahead]
    records = plan(mixed, topics.raw, 4)
    huge_at, unreadable_at, ahead_at = (
        next((r.partition, r.offset) for m, r in zip(mixed, records, strict=True) if m is x)
        for x in (huge, unreadable, ahead)
    )
    position = {id(m): (r.partition, r.offset) for m, r in zip(mixed, records, strict=True)}
    designed = {position[id(r)]: error for _, error, r in bad}
    assert len(designed) == len(bad)

    # The reference core dead-letters every hostile record with the class it was made for,
    # and the good traffic gives the same events as without the hostile records.
    want = expected([r for r in records if (r.partition, r.offset) != unreadable_at])
    # The core dead-letters the oversized event itself (EventTooLarge); the one stamped ahead is
    # emitted by the core and refused by the broker: neither is in the output.
    limit = DEFAULT_RECORD_MAX_BYTES
    want_outputs = [
        o
        for o in want.outputs
        if record_size(o.key, o.value, o.headers) <= limit and o.timestamp_ms < now + 3_600_000
    ]
    assert len(want_outputs) == len(want.outputs) - 1  # the one stamped ahead
    want_dead = [d for d in want.dead_letters if d.error_class != "EventTooLarge"]
    classes = {}
    for d in want.dead_letters:
        h = dict(d.headers[-5:])
        classes[int(h["source.partition"]), int(h["source.offset"])] = d.error_class
    mismatched = {p: (e, classes.get(p)) for p, e in designed.items() if classes.get(p) != e}
    assert not mismatched, list(mismatched.items())[:5]
    only_good = expected(plan(good, topics.raw, 4))

    def identities(outputs: list[OutputRecord]) -> set[tuple[bytes, bytes]]:
        return {(o.key, dict(o.headers)["status"]) for o in outputs}

    assert identities(want_outputs) == identities(only_good.outputs)

    with raw_header_keys():
        await produce(kafka_bootstrap, records, max_request_size=BIG)
    proc, out, dlq = await process_all(kafka_bootstrap, topics, spawn)
    pid = proc.pid

    check_outputs(out, want_outputs, 6)
    refused = {
        cls: [m for m in dlq if dict(m.headers)["error.class"] == cls]
        for cls in (b"EventTooLarge", b"UnreadableRecord", b"InvalidTimestamp")
    }
    for cls, at in (
        (b"EventTooLarge", huge_at),
        (b"UnreadableRecord", unreadable_at),
        (b"InvalidTimestamp", ahead_at),
    ):
        (m,) = refused[cls]
        h = dict(m.headers)
        assert (int(h["source.partition"]), int(h["source.offset"])) == at, cls
    assert dict(refused[b"UnreadableRecord"][0].headers)["pro\ufffdvider"] == b"tencent"
    # Stamped when it was refused: the dead-letter topic would refuse the stamp too.
    assert refused[b"InvalidTimestamp"][0].timestamp < now + 600_000
    check_dead_letters([m for m in dlq if not any(m in r for r in refused.values())], want_dead)
    by_class = Counter(dict(m.headers)["error.class"].decode() for m in dlq)
    assert by_class == Counter(
        [d.error_class for d in want_dead]
        + ["EventTooLarge", "UnreadableRecord", "InvalidTimestamp"]
    )
    for error, n in Counter(designed.values()).items():
        assert by_class[error] >= n, (error, by_class)
    assert by_class["BodyTooLarge"] == 3 and by_class["UnsafeXml"] == kinds["xml_attack"]
    for m in dlq:
        h = dict(m.headers)
        if h["error.class"] == b"BodyTooLarge":
            # Cut to fit the dead-letter record limit, the original size in a header.
            assert 1_000_000 < len(m.value) < DEFAULT_RECORD_MAX_BYTES
            assert record_size(m.key, m.value, m.headers) <= DEFAULT_RECORD_MAX_BYTES
            assert int(h["error.original_size"]) > 8 * 1024 * 1024
        assert json.dumps(h["error.message"].decode("utf-8"))  # a readable reason

    # The same process all along: never crashed, never restarted, still consuming.
    assert proc.alive() and proc.pid == pid
    assert len(proc.messages("started")) == 1
    assert proc.crashes() == []
    assert await proc.stop() == 0


def _oversized(stamp: int) -> list[tuple[str, InputRecord]]:
    """Valid receipts whose events no default topic can hold, and large flat XML; each with the
    dead-letter class it must get (too large for any output record; XML refused while parsing)."""
    callback = json.dumps(
        [
            {"user_receive_time": "2024-03-30 12:00:00", "nationcode": "86",
             "mobile": f"13900{i:06d}", "report_status": "SUCCESS", "errmsg": "DELIVRD",
             "description": "x" * 3_000_000 if i == 2 else "ok", "sid": f"poison-big-{i}"}
            for i in range(5)
        ]
    ).encode()  # fmt: skip
    # Free text stays verbatim whatever its length (an id that long would break the identity
    # rule instead): an unknown status of 1.1 MB.
    sms_partner = json.dumps(
        {"success": True, "code": 200, "message_id": "m-big",
         "StatutResponse_List": [{"phoneNumber": "+33611111111", "status": "m" * 1_100_000,
                                  "stopSMS": False, "date": "1711800000"}]}
    ).encode()  # fmt: skip
    yunpian = b"sms_status=" + urllib.parse.quote(
        json.dumps(
            [{"sid": 88_000_000 + i, "uid": "", "user_receive_time": "2024-03-30 12:00:00",
              "error_msg": "DELIVRD", "error_detail": "ok", "mobile": "13800138000",
              "report_status": "SUCCESS"} for i in range(3)]
        )
    ).encode()  # fmt: skip
    control = bytes(range(1, 32)) * (200_000 // 31)
    head = b"<result><entry>true</entry><entry>200</entry><entry>m</entry>"
    cases = [
        ("EventTooLarge", callback, [("provider", b"tencent"), ("endpoint", b"callback")]),
        ("EventTooLarge", sms_partner, [("provider", b"smspartner")]),
        ("EventTooLarge", yunpian, [("provider", b"yunpian"), ("account", control)]),
        ("MalformedBody", b"<result>" + b"<a/>" * (2 * MIB - 4) + b"</result>", []),
        ("MalformedBody", head + b"<entry/>" * (MIB - 16) + b"</result>", []),
    ]
    return [
        (error, InputRecord("", 0, 0, stamp + i, headers, body))
        for i, (error, body, headers) in enumerate(cases)
    ]


async def test_oversized_events_at_default_limits(kafka_bootstrap: str, spawn: Spawn) -> None:
    """Events too large for a default topic are dead-lettered (their body cut to fit), large
    flat XML is refused at its first element, and the processor never restarts."""
    topics = Topics("oversized", raw=4, out=6, dlq=2)
    # Only the raw topic takes large bodies (the ingress landed them); output and dead-letter
    # topics have the broker's default max.message.bytes.
    await create_topics(kafka_bootstrap, {topics.raw: 4}, {"max.message.bytes": str(BIG)})
    await create_topics(kafka_bootstrap, {topics.out: 6, topics.dlq: 2})
    good = corpus_records(53, 3_000)
    bad = _oversized(good[len(good) // 2].timestamp_ms)
    mixed = good[:1000] + [r for _, r in bad[:3]] + good[1000:2000] + [r for _, r in bad[3:]]
    mixed += good[2000:]
    records = plan(mixed, topics.raw, 4)
    want = expected(records)
    by_class = Counter(d.error_class for d in want.dead_letters)
    assert by_class["EventTooLarge"] == 3, by_class
    # The callback's four other reports are events; the rest of the stream is untouched.
    others = {f"poison-big-{i}" for i in (0, 1, 3, 4)}
    assert sum(json.loads(o.value)["message_id"] in others for o in want.outputs) == 4

    await produce(kafka_bootstrap, records, max_request_size=BIG)
    proc, out, dlq = await process_all(kafka_bootstrap, topics, spawn)
    pid = proc.pid

    check_outputs(out, want.outputs, 6)
    check_dead_letters(dlq, want.dead_letters)
    too_large = [m for m in dlq if dict(m.headers)["error.class"] == b"EventTooLarge"]
    assert len(too_large) == 3
    for m in too_large:
        h = dict(m.headers)
        assert record_size(m.key, m.value, m.headers) <= DEFAULT_RECORD_MAX_BYTES
        assert h["error.reports"] and m.key == f"{topics.raw}:{m_source(h)}".encode()
    cut = [int(dict(m.headers).get("error.original_size", b"0")) for m in too_large]
    assert max(cut) > 3_000_000  # the callback's body, cut to fit
    assert proc.alive() and proc.pid == pid
    assert len(proc.messages("started")) == 1
    assert proc.crashes() == []
    assert await proc.stop() == 0


def m_source(headers: dict[str, bytes]) -> str:
    """`partition:offset` of a dead letter's source record."""
    return f"{headers['source.partition'].decode()}:{headers['source.offset'].decode()}"
