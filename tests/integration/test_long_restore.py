"""A window restore longer than the group's session timeout (a large window rebuilt from the
output) keeps the dedupe stage's membership: restores run between batches, with heartbeats,
not in the rebalance callback, where aiokafka sends none (the member would be evicted, its
partitions handed out again and restored again, and without snapshots for ever)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from pipeline.config import Settings, load_run_settings
from pipeline.errors import RestoreStalled
from pipeline.kafka import new_restorer
from pipeline.runtime import DedupeStage, Processor
from pipeline.state import Restored, Restorer, Window
from pipeline.state import _restore as restore_module

from .conftest import (
    MIN_SESSION_MS,
    Topics,
    check_outputs,
    corpus_records,
    drain,
    end_offsets,
    expected,
    make_topics,
    plan,
    produce,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]

SESSION_MS = MIN_SESSION_MS
#: One restore this long: longer than the session, the member's heartbeats stop in a callback.
RESTORE_S = 1.5 * SESSION_MS / 1000


async def test_a_restore_longer_than_the_session_keeps_the_member(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = await make_topics(kafka_bootstrap, "long-restore", raw=1, out=1, dlq=1)
    records = plan(corpus_records(71, 1_000), topics.raw, 1)
    want = expected(records)
    await produce(kafka_bootstrap, records)

    real_restore = Restorer.restore

    async def slow_restore(
        self: Restorer, partition: int, window: Any, capacity: int, lifecycle: Any = None
    ) -> Restored:
        await asyncio.sleep(RESTORE_S)
        return await real_restore(self, partition, window, capacity, lifecycle)

    assignments: list[set[Any]] = []
    real_assigned = DedupeStage.assigned

    async def counted(self: DedupeStage, partitions: set[Any]) -> None:
        assignments.append(set(partitions))
        await real_assigned(self, partitions)

    monkeypatch.setattr(Restorer, "restore", slow_restore)
    monkeypatch.setattr(DedupeStage, "assigned", counted)
    settings = settings_for(
        kafka_bootstrap,
        topics,
        topology="partitioned",
        state_dir="",  # no snapshots: each assignment rebuilds from the output
        session_timeout_ms=SESSION_MS,
        fetch_max_wait_ms=50,
    )
    processor = Processor(settings)
    try:
        await processor.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(processor.run)
            with anyio.fail_after(60):
                while sum((await end_offsets(kafka_bootstrap, topics.out)).values()) < len(
                    want.outputs
                ):
                    await anyio.sleep(0.2)
            # Two more sessions: an evicted member would be assigned again meanwhile.
            await anyio.sleep(2 * SESSION_MS / 1000)
            processor.stopping.set()
    finally:
        await processor.stop()
    assert len(assignments) == 1, assignments
    check_outputs(await drain(kafka_bootstrap, topics.out), want.outputs, 1)


async def test_a_restore_that_gets_nowhere_fails_clearly(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that can never reach its end (here an end past the log) raises after `STALL_S`
    of no progress, naming the partition and offsets: the stage retries the step, then stops,
    instead of holding the partition paused for ever."""
    topics = await make_topics(kafka_bootstrap, "stalled-restore", raw=1, out=1, dlq=1)
    monkeypatch.setattr(restore_module, "STALL_S", 1.0)
    restorer = new_restorer(settings_for(kafka_bootstrap, topics))
    await restorer.start()
    try:
        window = Window(100, 3_600_000)
        with anyio.fail_after(30):
            with pytest.raises(RestoreStalled) as caught:
                await restorer.resume(0, window, 0, 5)
        assert f"{topics.out}[0]" in str(caught.value)
        assert "past offset 0 (of 0..5)" in str(caught.value)
        assert restorer.done == [] and len(window) == 0
        # Nothing is left assigned: the next restore starts clean and completes.
        assert restorer.consumer.assignment() == set()
        done = await restorer.restore(0, window, 100)
        assert (done.records, done.start, done.end) == (0, 0, 0)
    finally:
        await restorer.consumer.stop()


def settings_for(bootstrap: str, topics: Topics, **extra: Any) -> Settings:
    return load_run_settings(
        {
            "bootstrap_servers": bootstrap,
            "input_topics": [topics.raw],
            "output_topic": topics.out,
            "dead_letter_topic": topics.dlq,
            "group_id": topics.group,
            **extra,
        },
        environ={},
    )
