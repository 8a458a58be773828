"""Topologies: partition-owned windows across members, restore bounds, single's
refusal to share, and partition counts that change."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

from pipeline.kafka import partition_for
from pipeline.state import bound

from .conftest import (
    Placement,
    Proc,
    Spawn,
    add_partitions,
    check_outputs,
    chunks,
    corpus_records,
    corpus_stream,
    create_topics,
    drain,
    end_offsets,
    expected,
    make_topics,
    new_producer,
    plan,
    produce,
    records_with_events,
    run_args,
    send,
    wait_processed,
    wait_ready,
    wait_spread,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


def identities(records: Sequence[ConsumerRecord]) -> Counter[tuple[bytes, bytes]]:
    return Counter((m.key, dict(m.headers)["status"]) for m in records)


async def test_three_members_copies_within_ms_once(kafka_bootstrap: str, spawn: Spawn) -> None:
    topics = await make_topics(kafka_bootstrap, "three", raw=6, out=6, dlq=2)
    procs = [spawn(run_args(kafka_bootstrap, topics)) for _ in range(3)]
    sets = await wait_spread(procs, topics.raw, 6)
    # One input partition of each member.
    targets = [min(s) for s in sets]
    originals = records_with_events(51, 8_000, topics.raw, 240)
    placement = Placement(6)
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        for batch in chunks(originals, 8):
            # The same bodies on a partition of every member, in one send: a few ms apart.
            copies = []
            for p in targets:
                copies += placement.place(batch, p)
            await send(producer, copies)
    finally:
        await producer.stop()
    await wait_processed(kafka_bootstrap, topics, procs=procs)
    out = await drain(kafka_bootstrap, topics.out)
    got = identities(out)
    assert got and max(got.values()) == 1, [k for k, n in got.items() if n > 1][:3]
    # Every message is there (an intermediate status may be dropped as stale when a copy of its
    # final status came first: order across partitions is not promised).
    assert {k for k, _ in got} == {o.key for o in expected(originals).outputs}
    for proc in procs:
        assert await proc.stop() == 0 and proc.crashes() == []


async def test_kill9_and_members_added_and_removed(kafka_bootstrap: str, spawn: Spawn) -> None:
    rng = random.Random(int(time.time()))
    topics, records, want = await corpus_stream(kafka_bootstrap, "churn", 53, 30_000, raw=6)
    args = run_args(kafka_bootstrap, topics, extra=["--batch-max-records", "100"])
    procs = [spawn(args) for _ in range(3)]
    await wait_spread(procs, topics.raw, 6)
    producer = new_producer(kafka_bootstrap)
    await producer.start()
    try:
        parts = list(chunks(records, len(records) // 6 + 1))
        for i, part in enumerate(parts):
            await send(producer, part)
            await asyncio.sleep(rng.uniform(0.1, 0.6))
            if i == 1:  # kill -9 one member at a random point
                victim = procs.pop(rng.randrange(len(procs)))
                victim.kill()  # its partitions move once its session times out
            elif i == 2:  # a member added
                procs.append(spawn(args))
            elif i == 3:  # a member removed gracefully
                assert await procs.pop(0).stop() == 0
            elif i == 4:
                procs.append(spawn(args))
    finally:
        await producer.stop()
    await wait_processed(kafka_bootstrap, topics, procs=procs, timeout=120)
    out = await drain(kafka_bootstrap, topics.out)
    check_outputs(out, want.outputs, 6)
    for p in procs:
        assert await p.stop() == 0 and p.crashes() == []


async def test_restore_is_bounded_and_old_record_times_replay_once(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "restore", raw=2, out=2, dlq=1)
    # Input stamped 30 h ago: older than the window's ttl by the wall clock.
    old = int(time.time() * 1000) - 30 * 3600 * 1000
    planned = plan(corpus_records(55, 6_000), topics.raw, 2)
    records = [r._replace(timestamp_ms=old + i) for i, r in enumerate(planned)]
    want = expected(records)
    args = run_args(kafka_bootstrap, topics)
    await produce(kafka_bootstrap, records)
    proc = spawn(args)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    assert await proc.stop() == 0
    first = await drain(kafka_bootstrap, topics.out)
    check_outputs(first, want.outputs, 2)

    # A replay of the whole input (same bodies, same old stamps) after a restart.
    sizes = Counter(r.partition for r in records)
    await produce(
        kafka_bootstrap, [r._replace(offset=r.offset + sizes[r.partition]) for r in records]
    )
    proc = spawn(args)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    restored = proc.messages("window restored")
    assert {d["partition"] for d in restored} == {0, 1}
    # Everything the window can hold was read back: the start is not taken from the wall clock.
    assert sum(d["records"] for d in restored) == len(first), restored
    assert await proc.stop() == 0
    assert len(await drain(kafka_bootstrap, topics.out)) == len(first), "the replay emitted again"

    # A small window (1 000 messages per partition) reads no more than its bound.
    capacity = 2_000
    assert len(first) > 2 * bound(capacity // 2)  # more on each partition than the bound
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--window-max-messages", str(capacity)]))
    await proc.wait_log(lambda d: len(proc.messages("window restored")) >= 2, timeout=40)
    restored = proc.messages("window restored")
    assert all(0 < d["records"] <= bound(capacity // 2) for d in restored), restored
    assert await proc.stop() == 0


async def test_single_refuses_a_second_member(kafka_bootstrap: str, spawn: Spawn) -> None:
    topics = await make_topics(kafka_bootstrap, "single", raw=2, out=2, dlq=1)
    args = run_args(kafka_bootstrap, topics, extra=["--topology", "single"])
    a = spawn(args)
    await wait_ready(a, timeout=40)
    b = spawn(args)
    # A member handed a share refuses it (exit 2). One out first, the other may be handed every
    # partition in the next round: then it goes on alone, its window rebuilt after that round.
    deadline = time.monotonic() + 60
    while a.alive() and b.alive():
        assert time.monotonic() < deadline, "both members still running after 60 s"
        await asyncio.sleep(0.05)
    refused = a if not a.alive() else b
    other = b if refused is a else a
    assert await refused.wait(5) == 2, refused.text()[-3000:]
    assert "another member holds partitions" in refused.text()
    deadline = time.monotonic() + 30
    while other.alive() and not rebuilt_alone(other):
        assert time.monotonic() < deadline, other.text()[-3000:]
        await asyncio.sleep(0.05)
    if not other.alive():
        assert await other.wait(5) == 2 and "another member holds partitions" in other.text()
    assert not await repartition_exists(kafka_bootstrap, topics.out)
    other.kill()


def rebuilt_alone(proc: Proc) -> bool:
    """The last assignment holds every raw partition and both windows' partitions were read
    after it (what the other member wrote meanwhile included)."""
    logs = proc.lines()
    marks = [i for i, d in enumerate(logs) if d.get("msg") == "partitions assigned"]
    if not marks or len(logs[marks[-1]]["partitions"]) != 2:
        return False
    read = {d["partition"] for d in logs[marks[-1] :] if d.get("msg") == "window restored"}
    return read == {0, 1}


async def repartition_exists(bootstrap: str, output: str) -> bool:
    return bool(await end_offsets(bootstrap, f"{output}.by-message"))


async def test_repartition_topic_created_and_mismatch_refused(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "repart", raw=2, out=3, dlq=1)
    proc = spawn(run_args(kafka_bootstrap, topics))
    await proc.wait_log(lambda d: d.get("msg") == "started", timeout=40)
    assert len(await end_offsets(kafka_bootstrap, f"{topics.out}.by-message")) == 3
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        (config,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, f"{topics.out}.by-message")]
        )
        values = {c[0]: c[1] for c in config.resources[0][4]}
        assert values["retention.ms"] == str(86_400_000)
    finally:
        await admin.close()
    assert await proc.stop() == 0

    other = await make_topics(kafka_bootstrap, "mismatch", raw=2, out=3, dlq=1)
    await create_topics(kafka_bootstrap, {f"{other.out}.by-message": 2})
    proc = spawn(run_args(kafka_bootstrap, other))
    assert await proc.wait(60) == 2
    text = proc.text()
    assert f"{other.out}.by-message" in text and other.out in text and "partitions" in text


async def test_output_partitions_added_while_running(kafka_bootstrap: str, spawn: Spawn) -> None:
    topics = await make_topics(kafka_bootstrap, "grow", raw=2, out=2, dlq=1)
    records = plan(corpus_records(57, 6_000), topics.raw, 2)
    half = len(records) // 2
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--topology", "single"]))
    await produce(kafka_bootstrap, records[:half])
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    before = {(m.key, m.value) for m in await drain(kafka_bootstrap, topics.out)}
    await add_partitions(kafka_bootstrap, topics.out, 4)
    await asyncio.sleep(5)  # metadata is refreshed every 2 s
    await produce(kafka_bootstrap, records[half:])
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    out = await drain(kafka_bootstrap, topics.out)
    later = [m for m in out if (m.key, m.value) not in before]
    off = [m for m in later if m.partition != partition_for(m.key, 4)]
    assert later and {m.partition for m in later} == {0, 1, 2, 3}
    assert not off, f"{len(off)} records off their murmur2 partition"
    assert await proc.stop() == 0

    # Topology partitioned stops, naming the topics and what to do.
    grow = await make_topics(kafka_bootstrap, "grow2", raw=2, out=2, dlq=1)
    proc = spawn(run_args(kafka_bootstrap, grow))
    await proc.wait_log(lambda d: d.get("msg") == "started", timeout=40)
    await produce(kafka_bootstrap, plan(corpus_records(58, 300), grow.raw, 2))
    await wait_processed(kafka_bootstrap, grow, procs=[proc])
    await add_partitions(kafka_bootstrap, grow.out, 4)
    assert await proc.wait(30) == 2
    assert "partition count changed" in proc.text() and f"{grow.out}.by-message" in proc.text()
