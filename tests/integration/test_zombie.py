"""A member frozen (SIGSTOP) past its session timeout mid-stream, then woken: with
`--exactly-once` nothing it writes after losing its partitions reaches a read_committed reader;
without it, at most its batches in flight are duplicated (README, guarantees)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from typing import Any

import pytest

from .conftest import (
    MIN_SESSION_MS,
    Proc,
    Spawn,
    corpus_stream,
    drain,
    owned,
    produce,
    run_args,
    wait_processed,
    wait_spread,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]

SESSION_MS = MIN_SESSION_MS
#: Records of a dedupe batch (--batch-max-records), and batches in flight (the default
#: --max-batches-in-flight): what a zombie can have in hand, per window partition.
BATCH, DEPTH = 200, 2


def real_crashes(proc: Proc) -> list[dict[str, Any]]:
    """Crash lines, less aiokafka's warning at collection of a fenced producer's batches: their
    drain waiters fail with ProducerFenced and aiokafka never retrieves them (not ours to reach)."""
    lines = proc.crashes()
    blocks: list[list[dict[str, Any]]] = []
    for line in lines:
        if line.get("raw") == "Future exception was never retrieved" or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    return [
        line
        for block in blocks
        if not (
            len(block) > 1
            and block[0].get("raw") == "Future exception was never retrieved"
            and str(block[1].get("raw", "")).startswith(
                "future: <Future finished exception=ProducerFenced("
            )
            and all("raw" in line for line in block)
        )
        for line in block
    ]


async def frozen_member_run(
    bootstrap: str, spawn: Spawn, exactly_once: bool
) -> tuple[Counter[tuple[str, str | None, str, str]], int, Proc]:
    """Stream into two members, freeze one until the other owns every window partition, wake
    it; return (output identities read read_committed, expected count, the frozen member)."""
    topics, records, want = await corpus_stream(
        bootstrap, "zombie", 47, 12_000, raw=2, out=2, dlq=1
    )
    repartition = f"{topics.out}.by-message"
    extra = ["--session-timeout-ms", str(SESSION_MS), "--batch-max-records", str(BATCH)]
    extra += ["--exactly-once"] if exactly_once else []
    a = spawn(run_args(bootstrap, topics, extra=extra))
    b = spawn(run_args(bootstrap, topics, extra=extra))
    await wait_spread([a, b], repartition, 2, timeout=40)
    stream = asyncio.ensure_future(produce(bootstrap, records, spread_s=14.0))
    try:
        await asyncio.sleep(3.0)
        a.signal(signal.SIGSTOP)  # mid-stream: batches fetched, in hand or being written
        deadline = time.monotonic() + 40
        while owned(b, repartition) != {0, 1}:
            assert b.alive() and time.monotonic() < deadline, b.text()[-3000:]
            await asyncio.sleep(0.1)
        a.signal(signal.SIGCONT)
        await stream
    finally:
        if not stream.done():
            stream.cancel()
        a.signal(signal.SIGCONT)
    await wait_processed(bootstrap, topics, procs=[a, b])
    out = await drain(bootstrap, topics.out, isolation_level="read_committed")
    assert {(m.key, m.value) for m in out} == {(o.key, o.value) for o in want.outputs}
    identities: Counter[tuple[str, str | None, str, str]] = Counter()
    for m in out:
        event = json.loads(m.value)
        identities[event["provider"], event["account"], event["message_key"], event["status"]] += 1
    assert await a.stop() == 0 and await b.stop() == 0
    assert real_crashes(a) == [] and real_crashes(b) == [], a.text()[-6000:]
    return identities, len(want.outputs), a


async def test_exactly_once_fences_a_frozen_member(kafka_bootstrap: str, spawn: Spawn) -> None:
    identities, events, a = await frozen_member_run(kafka_bootstrap, spawn, exactly_once=True)
    assert len(identities) == events
    twice = {k: n for k, n in identities.items() if n > 1}
    assert not twice, f"{len(twice)} identities more than once, e.g. {list(twice)[:3]}"
    print("zombie partition lost:", len(a.messages("partition lost")))


async def test_without_exactly_once_a_frozen_member_duplicates_its_batch_at_most(
    kafka_bootstrap: str, spawn: Spawn
) -> None:
    identities, events, _ = await frozen_member_run(kafka_bootstrap, spawn, exactly_once=False)
    assert len(identities) == events
    duplicates = sum(n - 1 for n in identities.values())
    print("duplicates without --exactly-once:", duplicates)
    # The design's limit: the zombie's batches in flight, for each window partition it held.
    assert duplicates <= BATCH * DEPTH * 2
