"""The dedupe stage's restores outside the rebalance callback, on a fake consumer: a new
partition is paused and pending until its window is open, records fetched before the pause are
sought back, and one window is restored per turn of the loop, then its partition resumed."""

from __future__ import annotations

from typing import Any, NamedTuple

import anyio
import pytest
from aiokafka import TopicPartition

from pipeline._config import Settings
from pipeline.core._window import Window
from pipeline.kafka._dedupe import Dedupe
from pipeline.kafka._restore import Restorer
from pipeline.kafka._sink import Sink

pytestmark = pytest.mark.anyio

TOPIC = "out.by-message"
TP0, TP1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class Consumer:
    """What the stage calls on its consumer here, logged."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def pause(self, *tps: TopicPartition) -> None:
        self.log.append(("pause", set(tps)))

    def resume(self, *tps: TopicPartition) -> None:
        self.log.append(("resume", set(tps)))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.log.append(("seek", (tp, offset)))


class Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class Staged(NamedTuple):
    stage: Dedupe
    consumer: Consumer
    opened: list[int]  # the partitions whose windows were opened, in order


@pytest.fixture
async def staged(monkeypatch: pytest.MonkeyPatch) -> Staged:
    """A dedupe stage (its Kafka clients made, never started) on the fake consumer."""
    settings = Settings(output_topic="out", state_dir="")
    dedupe = Dedupe(settings, Sink(lambda _: None, "dlq"), Restorer(settings), 2, anyio.Event())
    consumer = Consumer()
    dedupe.consumer = consumer  # type: ignore[assignment]
    opened: list[int] = []

    async def open_window(partition: int) -> Window:
        opened.append(partition)
        return dedupe.new_window()

    monkeypatch.setattr(dedupe, "open_window", open_window)
    return Staged(dedupe, consumer, opened)


async def test_assigned_partitions_wait_paused_for_their_windows(staged: Staged) -> None:
    stage, consumer, _ = staged
    await stage.assigned({TP0, TP1})
    assert consumer.log == [("pause", {TP0, TP1})]
    assert stage.pending == {TP0, TP1} and not stage.windows and not stage.caught_up()


async def test_records_of_a_pending_partition_are_sought_back(staged: Staged) -> None:
    stage, consumer, _ = staged
    await stage.assigned({TP0})
    batches: dict[TopicPartition, list[Any]] = {TP0: [Record(5), Record(6)], TP1: [Record(9)]}
    assert stage.admit(batches) == {TP1: batches[TP1]}
    assert ("seek", (TP0, 5)) in consumer.log


async def test_one_window_per_turn_then_resumed_and_ready(staged: Staged) -> None:
    stage, consumer, opened = staged
    await stage.assigned({TP0, TP1})
    # What the listener does once `assigned` returns.
    stage.ready.set()
    stage.health.set_ready(stage.caught_up(), stage.name)
    await stage.catch_up()
    assert opened == [0] and set(stage.windows) == {0}
    assert stage.pending == {TP1} and not stage.health.ready()[0]
    await stage.catch_up()
    assert opened == [0, 1] and stage.caught_up()
    assert [tps for what, tps in consumer.log if what == "resume"] == [{TP0}, {TP1}]
    assert stage.health.ready()[0]


async def test_a_revoked_pending_partition_is_not_restored(staged: Staged) -> None:
    stage, _, opened = staged
    await stage.assigned({TP0, TP1})
    stage.ready.set()
    await stage.revoked({TP1})
    await stage.catch_up()
    await stage.catch_up()
    assert opened == [0] and stage.caught_up()
