"""Records the broker refuses (too large) end in the dead-letter topic, at the broker's
default limits: the sink replaces its spoilt producer, dead-letters the offenders and sends the
rest, in order."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError

from pipeline.core import CoreStats, DeadLetter, OutputRecord
from pipeline.errors import TopicProblem
from pipeline.kafka import Record, Sent, Sink, TopicLimits, partition_for, topic_limits

from .conftest import DEAD_LETTER_HEADERS, create_topics, drain, unique

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def limits_of(bootstrap: str, topics: list[str]) -> dict[str, TopicLimits]:
    """What the broker says of `topics`, read as the processor reads it at start."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await topic_limits(admin, topics)
    finally:
        await admin.close()


async def started_sink(
    bootstrap: str, dlq: str, limits: dict[str, TopicLimits], out: str | None = None
) -> tuple[Sink, list[AIOKafkaProducer]]:
    """A started sink believing `limits` (`out`: the output topic, whose refused events it
    counts), and the producers it made (one more per refusal)."""
    made: list[AIOKafkaProducer] = []

    def producer(batch_bytes: int) -> AIOKafkaProducer:
        made.append(
            AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                enable_idempotence=True,
                acks="all",
                max_batch_size=batch_bytes,
                max_request_size=8 << 20,
            )
        )
        return made[-1]

    async def start(p: AIOKafkaProducer) -> None:
        await p.start()

    sink = Sink(producer, dlq, CoreStats(), out)
    await sink.start(limits, start)
    return sink, made


def event(offset: int, pad: int = 0) -> bytes:
    source = {"topic": "raw", "partition": 2, "offset": offset, "index": 0}
    return json.dumps({"source": source, "pad": "x" * pad}).encode()


async def test_refused_records_are_dead_lettered_and_the_rest_sent(
    kafka_bootstrap: str,
) -> None:
    out, dlq = unique("sink-out"), unique("sink-dlq")
    await create_topics(kafka_bootstrap, {out: 2, dlq: 1})  # Kafka's default limits
    limits = await limits_of(kafka_bootstrap, [out, dlq])
    sink, made = await started_sink(kafka_bootstrap, dlq, limits, out)
    now = int(time.time() * 1000)
    headers = [("event_id", b"e"), ("provider", b"tencent"), ("status", b"DELIVERED")]
    records = [
        (
            b"k%d" % i,
            event(i, 3_000_000 if i == 2 else 10),
            headers,
            now + (7_200_000 if i == 4 else 0),
        )
        for i in range(7)
    ]
    dead_letter = (
        None,
        b"y" * 2_000_000,
        [
            ("provider", b"x"),
            ("error.class", b"MalformedBody"),
            ("error.message", b"m"),
            ("source.topic", b"raw"),
            ("source.partition", b"1"),
            ("source.offset", b"9"),
        ],
        now,
    )
    try:
        sent = await sink.send(out, records, [0, 0, 0, 1, 0, 0, 1])
        sent += await sink.send(dlq, [dead_letter], [0])
        await sink.flush(sent)
        assert len(made) == 2  # the refusal spoilt the first producer's sequence numbers
        assert made[0]._message_accumulator._batch_size == 1 << 20  # fits the 1 MiB default
        # The new producer works as the first did.
        await sink.flush(await sink.send(out, [(b"k7", event(7), headers, now)], [0]))
    finally:
        await sink.stop()

    got = await drain(kafka_bootstrap, out)
    by_partition = {p: [m.key for m in got if m.partition == p] for p in (0, 1)}
    assert by_partition == {0: [b"k0", b"k1", b"k5", b"k7"], 1: [b"k3", b"k6"]}
    dead = {dict(m.headers)["error.class"]: m for m in await drain(kafka_bootstrap, dlq)}
    assert sorted(dead) == [b"EventTooLarge", b"InvalidTimestamp", b"MalformedBody"]
    for m in dead.values():
        assert [k for k, _ in m.headers][-5:] == DEAD_LETTER_HEADERS
        assert len(m.value) + sum(len(k) + len(v) for k, v in m.headers) < limits[dlq].record_bytes
    big = dict(dead[b"EventTooLarge"].headers)
    assert (big["source.topic"], big["source.partition"], big["source.offset"]) == (
        b"raw",
        b"2",
        b"2",
    )
    assert int(big["error.original_size"]) > 3_000_000
    assert dead[b"EventTooLarge"].key == b"raw:2:2"  # keyed by its source, as the core keys
    assert dead[b"EventTooLarge"].value == event(2, 3_000_000)[: len(dead[b"EventTooLarge"].value)]
    late = dead[b"InvalidTimestamp"]
    assert dict(late.headers)["source.offset"] == b"4" and late.value == event(4, 10)
    assert abs(late.timestamp - now) < 600_000  # stamped now: the dead-letter topic takes it
    cut = dead[b"MalformedBody"]
    assert int(dict(cut.headers)["error.original_size"]) == 2_000_000
    assert cut.value == b"y" * len(cut.value)
    # The metrics: two events out were refused and dead-lettered here (the third dead letter
    # was the core's, counted by the core).
    assert sink.stats.events_refused == {("tencent", "DELIVERED"): 2}
    assert sink.stats.dead_letters == {"EventTooLarge": 1, "InvalidTimestamp": 1}


async def lowered_limit_sink(bootstrap: str, name: str) -> tuple[Sink, str, str]:
    """A started sink on new topics of one partition whose output limit was lowered since start
    (it is 1 MiB; the sink believes 16 MiB): (sink, output topic, dead-letter topic)."""
    out, dlq = unique(f"{name}-out"), unique(f"{name}-dlq")
    await create_topics(bootstrap, {out: 1, dlq: 1})
    limits = await limits_of(bootstrap, [out, dlq])
    limits[out] = TopicLimits(max_message_bytes=16 << 20)
    sink, _ = await started_sink(bootstrap, dlq, limits)
    return sink, out, dlq


async def check_one_dead_letter(bootstrap: str, dlq: str) -> None:
    (dead,) = await drain(bootstrap, dlq)
    h = dict(dead.headers)
    assert (h["error.class"], h["source.offset"], dead.key) == (b"EventTooLarge", b"1", b"raw:2:1")
    assert int(h["error.original_size"]) == len(event(1, 2_000_000))


async def test_record_refused_alone_is_dead_lettered_even_if_limits_said_it_fits(
    kafka_bootstrap: str,
) -> None:
    sink, out, dlq = await lowered_limit_sink(kafka_bootstrap, "sink-lowered")
    now = int(time.time() * 1000)
    records: list[Record] = [
        (b"k%d" % i, event(i, 2_000_000 if i == 1 else 10), [], now) for i in range(3)
    ]
    try:
        await sink.flush(await sink.send(out, records, [0, 0, 0]))
    finally:
        await sink.stop()
    assert [m.key for m in await drain(kafka_bootstrap, out)] == [b"k0", b"k2"]
    await check_one_dead_letter(kafka_bootstrap, dlq)


async def test_a_refusal_spoils_the_next_batch_in_flight_which_is_sent_again(
    kafka_bootstrap: str,
) -> None:
    """Two batches in flight (max_batches_in_flight): the refusal in the first spoils the
    producer's sequence for the partition, so the second, queued behind it, fails out of order;
    its flush sends it again rather than failing."""
    sink, out, dlq = await lowered_limit_sink(kafka_bootstrap, "sink-spoilt")
    now = int(time.time() * 1000)
    records: list[Record] = [
        (b"k%d" % i, event(i, 2_000_000 if i == 1 else 10), [], now) for i in range(5)
    ]
    try:
        first = await sink.send(out, records[:3], [0, 0, 0])
        second = await sink.send(out, records[3:], [0, 0])
        await sink.flush(first)
        await sink.flush(second)
    finally:
        await sink.stop()
    assert [m.key for m in await drain(kafka_bootstrap, out)] == [b"k0", b"k2", b"k3", b"k4"]
    await check_one_dead_letter(kafka_bootstrap, dlq)


async def test_write_refused_by_authorization_names_topic_and_operation() -> None:
    # What aiokafka hands back for a batch the credentials may not write (no ACL broker here).
    refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    refused.set_exception(TopicAuthorizationFailedError())
    sink = Sink(lambda batch_bytes: None, "dlq")
    with pytest.raises(TopicProblem, match=r"^not authorized to Write topic 'sms-out'$"):
        await sink.flush([Sent(refused, "sms-out", 0, [])])


async def test_events_stamped_outside_the_window_are_dead_lettered_before_sending(
    kafka_bootstrap: str,
) -> None:
    # Kafka's default message.timestamp.after.max.ms is one hour: a producer clock 2 h ahead.
    out, dlq = unique("sink-future-out"), unique("sink-future-dlq")
    state = unique("sink-future-state")
    await create_topics(kafka_bootstrap, {out: 1, dlq: 1, state: 1})
    limits = await limits_of(kafka_bootstrap, [out, dlq, state])
    sink, made = await started_sink(kafka_bootstrap, dlq, limits, out)
    now = int(time.time() * 1000)
    ahead = now + 7_200_000
    headers = [("event_id", b"e"), ("provider", b"tencent"), ("status", b"SENT")]
    outputs = [
        OutputRecord(b"k%d" % i, event(i), headers, ahead if i in (1, 3) else now) for i in range(5)
    ]
    core_dead = DeadLetter(
        b"raw:1:9",
        b"garbage",
        [(name, b"1") for name in DEAD_LETTER_HEADERS],
        ahead,
        "MalformedBody",
    )
    # Each event's state record, stamped as its event.
    states = [OutputRecord(o.key, b"{}", [], o.timestamp_ms) for o in outputs]
    try:
        await sink.flush(await sink.write(out, outputs, [core_dead], states, state))
        await sink.flush(await sink.write(out, outputs[:1], []))  # and the producer goes on
    finally:
        await sink.stop()
    assert len(made) == 1  # nothing was refused: no producer spoilt, none replaced
    # Every state record written, those stamped ahead stamped when they were written.
    written = await drain(kafka_bootstrap, state)
    assert [m.key for m in written] == [b"k0", b"k1", b"k2", b"k3", b"k4"]
    assert all(abs(m.timestamp - now) < 600_000 for m in written)
    assert [m.key for m in await drain(kafka_bootstrap, out)] == [b"k0", b"k2", b"k4", b"k0"]
    dead = await drain(kafka_bootstrap, dlq)
    late = sorted(
        (m for m in dead if dict(m.headers)["error.class"] == b"InvalidTimestamp"),
        key=lambda m: m.key,
    )
    assert [(m.key, m.value) for m in late] == [(b"raw:2:1", event(1)), (b"raw:2:3", event(3))]
    assert all(abs(m.timestamp - now) < 600_000 for m in dead)  # all stamped now, all landed
    assert {m.key for m in dead} == {b"raw:1:9", b"raw:2:1", b"raw:2:3"}
    assert sink.stats.events_refused == {("tencent", "SENT"): 2}
    assert sink.stats.dead_letters == {"InvalidTimestamp": 2}


async def test_dead_letters_spread_over_the_dead_letter_partitions_by_their_keys(
    kafka_bootstrap: str,
) -> None:
    out, dlq = unique("sink-spread-out"), unique("sink-spread-dlq")
    await create_topics(kafka_bootstrap, {out: 1, dlq: 12})
    sink, _ = await started_sink(kafka_bootstrap, dlq, await limits_of(kafka_bootstrap, [out, dlq]))
    now = int(time.time() * 1000)
    reason = [(name, b"1") for name in DEAD_LETTER_HEADERS]
    dead = [DeadLetter(b"raw:2:%d" % n, b"junk", reason, now, "MalformedBody") for n in range(40)]
    try:
        await sink.flush(await sink.write(out, [], dead))
    finally:
        await sink.stop()
    got = await drain(kafka_bootstrap, dlq)
    assert sorted(m.key for m in got) == sorted(d.key for d in dead)
    # Each on the partition Kafka's Java producer would pick for its key: spread, not all on 0.
    assert all(m.partition == partition_for(m.key, 12) for m in got)
    assert len({m.partition for m in got}) > 5
