"""Replication faults on a three-node cluster (replication 3, min.insync.replicas 2) under a
steady stream: the node leading most output partitions killed with SIGKILL and restarted, a
node frozen (SIGSTOP) past the consumer session timeout and thawed, the node coordinating most
consumer groups killed and restarted. Nothing is lost, nothing duplicated, and every processor
instance is still running at the end — in both topologies and with `--exactly-once`.

The three configurations run at the same time against the session's cluster
(`kafka_cluster`), each with its own topics and groups, while the faults happen one after
another: one fault sequence covers all three. Between faults the cluster is let catch up (every
replica back in sync) and every configuration must have written more output.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from pipeline.core import InputRecord
from tools.broker import LocalCluster

from .conftest import (
    MIN_SESSION_MS,
    Proc,
    Spawn,
    Topics,
    check_outputs,
    check_replayed_dead_letters,
    corpus_records,
    drain,
    expected,
    make_topics,
    plan,
    produce,
    run_args,
    wait_processed,
    wait_ready,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]

#: What each configuration adds to `run`'s arguments.
CONFIGS = {
    "partitioned": [],
    "single": ["--topology", "single"],
    "exactly-once": ["--exactly-once"],
}
#: Each configuration's stream: about 15 records (250 events) a second, cut short once the
#: faults are over (they take 60-120 s, depending on the machine's load).
STREAM_S = 240.0
RECEIPTS = 70_000
#: Partitions of each output topic (`make_topics`' default).
OUT = 6
#: The processors' session timeout: the shortest the broker allows, so that the freeze outlasts
#: it without the test waiting out the 10 s default.
SESSION_MS = MIN_SESSION_MS
FROZEN_S = SESSION_MS / 1000 + 2.0


class Run(NamedTuple):
    """One configuration: its topics, its planned stream and its processor."""

    name: str
    topics: Topics
    records: list[InputRecord]
    proc: Proc


def most(counts: Iterable[int], what: str) -> int:
    """The node that comes up most often in `counts` (node ids)."""
    tally = Counter(node for node in counts if node >= 0)
    assert tally, f"no node leads any {what}"
    node, _ = tally.most_common(1)[0]
    print(f"{what}: {dict(tally)}, node {node}")
    return node


async def outputs(bootstrap: str, runs: Iterable[Run]) -> list[int]:
    """Records on each run's output topic. Asked with a short request timeout and again on
    failure: a frozen node answers nothing, and it leads partitions until it is fenced."""
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await consumer.start()
            counts = []
            for run in runs:
                tps = [TopicPartition(run.topics.out, p) for p in range(OUT)]
                counts.append(sum((await consumer.end_offsets(tps)).values()))
            return counts
        except KafkaError:
            await asyncio.sleep(0.2)
        finally:
            await consumer.stop()


async def progress(bootstrap: str, runs: list[Run], timeout: float = 60.0) -> None:
    """Until every configuration has written more output than now (its processor alive)."""
    before = await outputs(bootstrap, runs)
    deadline = time.monotonic() + timeout
    while True:
        now = await outputs(bootstrap, runs)
        if all(n > b for n, b in zip(now, before, strict=True)):
            return
        for run in runs:
            assert run.proc.alive(), f"{run.name} exited:\n{run.proc.text()[-3000:]}"
        assert time.monotonic() < deadline, f"no progress in {timeout} s: {before} -> {now}"
        await asyncio.sleep(0.2)


async def caught_up(cluster: LocalCluster, node: int) -> None:
    """Until the restarted `node` is back and every replica in sync again (the next fault must
    not find partitions one replica short)."""
    await asyncio.to_thread(cluster.wait_node, node)
    await cluster.wait_in_sync()


def revive(cluster: LocalCluster) -> list[int]:
    """Thaw every frozen node and start every stopped one (the session's cluster must not be
    left short); the nodes started."""
    started = []
    for node in cluster.node_ids:
        if cluster.frozen(node):
            cluster.thaw(node)
        if not cluster.running(node):
            cluster.start_node(node)  # from this thread: the node dies with it
            started.append(node)
    return started


async def check(bootstrap: str, run: Run, count: int) -> None:
    """The first `count` records of `run`'s stream gave every event exactly once."""
    want = expected(run.records[:count])
    await wait_processed(bootstrap, run.topics, procs=[run.proc], timeout=120)
    out = await drain(bootstrap, run.topics.out, isolation_level="read_committed")
    check_outputs(out, want.outputs, OUT)
    check_replayed_dead_letters(await drain(bootstrap, run.topics.dlq), want.dead_letters)
    print(f"{run.name}: {count} records, {len(want.outputs)} events, exactly once")


async def test_replication_faults_lose_and_duplicate_nothing(
    kafka_cluster: LocalCluster, spawn: Spawn
) -> None:
    cluster = kafka_cluster
    bootstrap = cluster.bootstrap
    await cluster.wait_in_sync()
    runs = []
    for seed, (name, flags) in enumerate(CONFIGS.items(), start=61):
        topics = await make_topics(bootstrap, f"replicas-{name}", replicas=3)
        records = plan(corpus_records(seed, RECEIPTS), topics.raw, 4)
        extra = [*flags, "--session-timeout-ms", str(SESSION_MS)]
        runs.append(Run(name, topics, records, spawn(run_args(bootstrap, topics, extra=extra))))
    for run in runs:
        await wait_ready(run.proc, timeout=60)

    done = asyncio.Event()
    streams = [
        asyncio.create_task(produce(bootstrap, run.records, spread_s=STREAM_S, until=done))
        for run in runs
    ]
    started = time.monotonic()
    try:
        await progress(bootstrap, runs)

        # (a) The node leading most output partitions: killed; the stream goes on without it
        # (its partitions led by another replica once it is fenced); then restarted.
        leaders = [n for run in runs for n in (await cluster.leaders(run.topics.out)).values()]
        killed = most(leaders, "output partitions led")
        cluster.kill(killed)
        await progress(bootstrap, runs)
        cluster.start_node(killed)  # from this thread: the node dies with it
        await caught_up(cluster, killed)
        await progress(bootstrap, runs)
        print(f"(a) done at {time.monotonic() - started:.1f} s")

        # (b) The node leading most input partitions: frozen past the session timeout.
        leaders = [n for run in runs for n in (await cluster.leaders(run.topics.raw)).values()]
        frozen = most(leaders, "input partitions led")
        cluster.freeze(frozen)
        await asyncio.sleep(FROZEN_S)
        cluster.thaw(frozen)
        await cluster.wait_in_sync()
        await progress(bootstrap, runs)
        print(f"(b) done at {time.monotonic() - started:.1f} s")

        # (c) The node coordinating most of the consumer groups (both stages' groups): killed;
        # restarted while the outputs are checked.
        groups = [run.topics.group for run in runs]
        groups += [f"{run.topics.group}.dedupe" for run in runs if run.name != "single"]
        coordinator = most(
            [await cluster.coordinator(group) for group in groups], "groups coordinated"
        )
        cluster.kill(coordinator)
        await progress(bootstrap, runs)
        print(f"(c) done at {time.monotonic() - started:.1f} s")
    finally:
        done.set()
        sent = await asyncio.gather(*streams)
        revived = revive(cluster)  # the killed coordinator, or whatever a failure left down

    rejoined = asyncio.gather(*(caught_up(cluster, node) for node in revived))
    assert all(count < len(run.records) for run, count in zip(runs, sent, strict=True)), (
        "the stream ended before the faults did"
    )
    await asyncio.gather(
        *(check(bootstrap, run, count) for run, count in zip(runs, sent, strict=True))
    )
    await rejoined
    for run in runs:
        assert run.proc.alive(), f"{run.name} exited:\n{run.proc.text()[-3000:]}"
    for run in runs:
        assert await run.proc.stop() == 0, run.proc.text()[-3000:]
        assert run.proc.crashes() == [], run.proc.crashes()[:5]
