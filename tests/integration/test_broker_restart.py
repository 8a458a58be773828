"""The broker goes away in the middle of a stream and comes back: the same processor process
carries on by itself, and the output holds every event exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from .conftest import (
    RestartableKafka,
    Spawn,
    check_outputs,
    check_replayed_dead_letters,
    corpus_stream,
    drain,
    produce,
    run_args,
    wait_processed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def output_count(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_broker_restart_mid_stream(own_broker: RestartableKafka, spawn: Spawn) -> None:
    bootstrap = own_broker.bootstrap
    topics, records, want = await corpus_stream(bootstrap, "restart", 31, 40_000)
    # Two thirds are there before the restart; the rest arrives after it, so the stream is
    # certainly unfinished when the broker goes down, and the same process must take up the
    # new records after it came back. (`plan` numbered the offsets in list order, so the two
    # parts land exactly where the expectation has them.)
    cut = len(records) * 2 // 3
    await produce(bootstrap, records[:cut])

    proc = spawn(run_args(bootstrap, topics, extra=["--batch-max-records", "50"]))
    deadline = time.monotonic() + 60
    while await output_count(bootstrap, topics.out, 6) < len(want.outputs) // 10:
        assert proc.alive() and time.monotonic() < deadline, proc.text()[-3000:]
        await asyncio.sleep(0.01)

    # Blocking on purpose: the processor is another process, and nothing here must run while
    # the broker is down.
    own_broker.restart(down_s=2.0)
    before = await output_count(bootstrap, topics.out, 6)
    assert before < len(want.outputs)
    print(f"outputs when the broker came back: {before} of {len(want.outputs)}")
    await produce(bootstrap, records[cut:])

    await wait_processed(bootstrap, topics, procs=[proc], timeout=120)
    out = await drain(bootstrap, topics.out)
    check_outputs(out, want.outputs, 6)
    check_replayed_dead_letters(await drain(bootstrap, topics.dlq), want.dead_letters)
    # The very same process recovered (no supervisor restarted it), and stops cleanly.
    assert proc.alive()
    assert await proc.stop() == 0
    assert proc.crashes() == []
