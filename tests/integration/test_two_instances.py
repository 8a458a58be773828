"""Several processors in one consumer group: separate processes (instances) and `--workers`
(with their state records)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.core import InputRecord

from .conftest import (
    Placement,
    Spawn,
    check_dead_letters,
    check_outputs,
    check_states,
    chunks,
    corpus_stream,
    drain,
    expected,
    make_topics,
    new_producer,
    produce,
    records_with_events,
    run_args,
    send,
    wait_processed,
    wait_spread,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def test_retry_on_a_partition_of_the_other_instance(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    topics = await make_topics(kafka_bootstrap, "two", raw=4, out=6, dlq=2)
    a = spawn(run_args(kafka_bootstrap, topics))
    b = spawn(run_args(kafka_bootstrap, topics))
    mine, theirs = await wait_spread([a, b], topics.raw, 4, timeout=40)
    p_a, p_b = min(mine), min(theirs)

    # Good receipt bodies only (every one yields events): originals to a partition of A.
    originals = records_with_events(41, 6_000, topics.raw, 60)
    sent: list[InputRecord] = []  # the originals, where they landed
    placement = Placement(4)
    producer = new_producer(kafka_bootstrap)
    watcher = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await watcher.start()
    out_tps = [TopicPartition(topics.out, p) for p in range(6)]
    try:
        for batch in chunks(originals, 4):
            # The original: as soon as its events are on the output topic (polled every few
            # ms), the provider's retry (same bytes, same headers) on a partition of B; then a
            # copy on every other partition too (both instances see copies).
            batch = placement.place(batch, p_a)
            sent += batch
            await send(producer, batch)
            emitted = len(expected(sent).outputs)
            deadline = time.monotonic() + 30
            while sum((await watcher.end_offsets(out_tps)).values()) < emitted:
                assert a.alive() and b.alive() and time.monotonic() < deadline, (
                    a.text()[-3000:] + b.text()[-3000:]
                )
                await asyncio.sleep(0.002)
            await send(producer, placement.place(batch, p_b))
            copies = []
            for p in [*sorted(set(range(4)) - {p_a, p_b}), p_a]:
                copies += placement.place(batch, p)
            await send(producer, copies)
    finally:
        await producer.stop()
        await watcher.stop()
    want = expected(sent)
    assert len(want.outputs) > 300

    await wait_processed(kafka_bootstrap, topics, procs=[a, b])
    out = await drain(kafka_bootstrap, topics.out)
    check_outputs(out, want.outputs, 6)
    # Each instance did process copies: none of them fetched nothing.
    assert a.messages("partitions assigned") and b.messages("partitions assigned")
    assert await a.stop() == 0 and await b.stop() == 0
    assert a.crashes() == [] and b.crashes() == []
    stopped = [p.messages("stopped")[0]["batches"] for p in (a, b)]
    assert all(n > 0 for n in stopped), stopped


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in "ZX":
                out.append(int(entry))
    return out


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in "ZX"
    except OSError:
        return False


async def test_two_workers_in_one_process(kafka_bootstrap: str, spawn: Spawn) -> None:
    topics, records, want = await corpus_stream(kafka_bootstrap, "workers", 43, 20_000)
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--workers", "2"]))
    # Both workers are in the group before the stream arrives, so both take part.
    await proc.wait_log(lambda d: len(proc.messages("started")) >= 2, timeout=40)
    workers = [pid for pid in children(proc.pid) if b"spawn_main" in cmdline(pid)]
    assert len(workers) == 2, [cmdline(pid) for pid in children(proc.pid)]
    await produce(kafka_bootstrap, records)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])

    out = await drain(kafka_bootstrap, topics.out)
    check_outputs(out, want.outputs, 6)
    dlq = await drain(kafka_bootstrap, topics.dlq)
    check_dead_letters(dlq, want.dead_letters)
    # The workers' state records: every message's last one right, no version going back.
    states = await drain(kafka_bootstrap, f"{topics.out}.messages")
    assert check_states(out, states) > 1000
    assert len(states) == len(out)  # one per emitted event (no time-out due)
    assignments = [d for d in proc.messages("partitions assigned") if d["partitions"]]
    assert assignments

    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert await proc.wait(10) == 0
    assert time.monotonic() - started < 10
    stopped = proc.messages("stopped")
    assert len(stopped) == 2, proc.text()[-3000:]
    assert sum(d["batches"] for d in stopped) > 0
    assert [pid for pid in workers if alive(pid)] == []
    assert proc.crashes() == []


async def test_workers_die_with_their_parent(kafka_bootstrap: str, spawn: Spawn) -> None:
    """A `--workers` parent killed with SIGKILL (or by the OOM killer) leaves no worker behind
    consuming unsupervised: a restarted parent would otherwise add its workers to theirs."""
    topics = await make_topics(kafka_bootstrap, "orphans", raw=2, out=2, dlq=1)
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--workers", "2"]))
    await proc.wait_log(lambda d: len(proc.messages("started")) >= 2, timeout=40)
    workers = [pid for pid in children(proc.pid) if b"spawn_main" in cmdline(pid)]
    assert len(workers) == 2
    proc.kill()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their parent"
        await asyncio.sleep(0.05)
