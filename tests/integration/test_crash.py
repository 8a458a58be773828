"""`kill -9` at random points of a long stream, restart, repeat: no event lost, none twice."""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from .conftest import (
    Spawn,
    check_outputs,
    check_replayed_dead_letters,
    corpus_stream,
    dead_letter_view,
    drain,
    evict_members,
    group_members,
    produce,
    run_args,
    wait_processed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]

KILLS = 6
NATURAL_TIMEOUT_KILL = 3  # the kill after which the group is left to time the member out


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    seed = int(os.environ.get("CRASH_TEST_SEED") or random.randrange(1 << 30))
    print(f"CRASH_TEST_SEED={seed}")  # shown on failure: replays the same kill points
    rng = random.Random(seed)
    topics, records, want = await corpus_stream(kafka_bootstrap, "crash", 21, 60_000)
    total = len(want.outputs)
    await produce(kafka_bootstrap, records)

    # Kill points are chosen by progress (events on the output topic), not by time, so that
    # every kill lands mid-stream however fast the machine is, and each run gets further: a run
    # is killed once the output passed its threshold *and* it emitted something itself (so it
    # was consuming, not still starting). A random extra delay of 0-40 ms moves the kill
    # within the batch cycle (fetch, process, produce, wait for acks, commit). Small batches
    # make many such cycles.
    thresholds = sorted(rng.uniform(0.05, 0.85) * total for _ in range(KILLS))
    args = run_args(kafka_bootstrap, topics, extra=["--batch-max-records", "50"])
    watcher = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await watcher.start()
    tps = [TopicPartition(topics.out, p) for p in range(6)]
    kills = []
    try:
        for threshold in thresholds:
            base = sum((await watcher.end_offsets(tps)).values())
            proc = spawn(args)
            deadline = time.monotonic() + 90
            while True:
                done = sum((await watcher.end_offsets(tps)).values())
                if done >= threshold and done > base:
                    break
                assert proc.alive(), f"processor exited:\n{proc.text()[-3000:]}"
                assert time.monotonic() < deadline, f"stuck at {done}/{total}:\n{proc.text()}"
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0, 0.04))
            proc.kill()
            kills.append(sum((await watcher.end_offsets(tps)).values()))
            # All but one dead member are evicted at once, to save their 10 s session timeout;
            # one restart waits for the coordinator to notice the death by itself.
            if len(kills) != NATURAL_TIMEOUT_KILL:
                for group in (topics.group, f"{topics.group}.dedupe"):  # both stages' groups
                    await evict_members(
                        kafka_bootstrap, group, await group_members(kafka_bootstrap, group)
                    )
    finally:
        await watcher.stop()
    print(f"outputs at each kill: {kills} of {total}")
    # Every kill hit a stream in progress (and not after the end).
    assert len(kills) == KILLS and all(k < total for k in kills), (kills, total)

    proc = spawn(args)
    await wait_processed(kafka_bootstrap, topics, procs=[proc], timeout=120)
    out = await drain(kafka_bootstrap, topics.out)
    check_outputs(out, want.outputs, 6)
    # Dead letters are at-least-once (a replayed batch dead-letters its bad records again);
    # every one is there, with its reason.
    dlq = await drain(kafka_bootstrap, topics.dlq)
    assert {dead_letter_view(m.value, m.headers) for m in dlq} == {
        dead_letter_view(d.value, d.headers) for d in want.dead_letters
    }
    check_replayed_dead_letters(dlq, want.dead_letters)
    # The last run restored its windows from what the killed runs had emitted.
    restored = proc.messages("window restored")
    assert {d["partition"] for d in restored} == set(range(6))
    assert sum(d["records"] for d in restored) >= kills[-1]
    assert await proc.stop() == 0
    assert proc.crashes() == []
