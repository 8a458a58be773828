"""Restores outside the rebalance callback, on a fake consumer. DedupeStage: a new partition is
paused and pending until its window is open, records fetched before the pause are sought back,
and one window is restored per turn of the loop, then its partition resumed. SingleStage: it refuses
a share of the partitions, and its window is rebuilt at every assignment, one output partition
per turn, before any partition resumes."""

from __future__ import annotations

from typing import Any, NamedTuple

import anyio
import pytest
from aiokafka import TopicPartition

from pipeline.config import Settings
from pipeline.core import Core
from pipeline.errors import SettingProblem
from pipeline.kafka import Sink, new_restorer
from pipeline.runtime import DedupeStage, SingleStage
from pipeline.runtime._dedupe import Dropped
from pipeline.state import Restored, Window

pytestmark = pytest.mark.anyio

TOPIC = "out.by-message"
TP0, TP1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
RAW = "raw"
RAW0, RAW1 = TopicPartition(RAW, 0), TopicPartition(RAW, 1)


class Consumer:
    """What the stage calls on its consumer here, logged."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def subscription(self) -> set[str]:
        return {RAW}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1} if topic == RAW else set()

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
    stage: DedupeStage
    consumer: Consumer
    opened: list[int]  # the partitions whose windows were opened, in order


@pytest.fixture
async def staged(monkeypatch: pytest.MonkeyPatch) -> Staged:
    """A dedupe stage (its Kafka clients made, never started) on the fake consumer."""
    settings = Settings(output_topic="out", state_dir="")
    dedupe = DedupeStage(
        settings, Sink(lambda _: None, "dlq"), new_restorer(settings), 2, anyio.Event()
    )
    consumer = Consumer()
    dedupe.consumer = consumer
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
    await stage.listener().on_partitions_assigned({TP0, TP1})
    await stage.catch_up()
    assert opened == [0] and set(stage.windows) == {0}
    assert stage.pending == {TP1} and not stage.health.ready()[0]
    await stage.catch_up()
    assert opened == [0, 1] and stage.caught_up()
    assert [tps for what, tps in consumer.log if what == "resume"] == [{TP0}, {TP1}]
    assert stage.health.ready()[0]


async def test_a_revoked_pending_partition_is_not_restored(staged: Staged) -> None:
    stage, _, opened = staged
    await stage.listener().on_partitions_assigned({TP0, TP1})
    await stage.listener().on_partitions_revoked({TP1})
    await stage.listener().on_partitions_assigned({TP0})
    await stage.catch_up()
    await stage.catch_up()
    assert opened == [0] and stage.caught_up()


async def test_the_counts_of_a_revoked_window_are_kept(staged: Staged) -> None:
    stage, _, _ = staged
    await stage.listener().on_partitions_assigned({TP0, TP1})
    await stage.catch_up()
    await stage.catch_up()
    for p, n in ((0, 3), (1, 5)):
        window = stage.windows[p]
        window.check_batch(window.hashes([b"k%d" % i for i in range(n)]), [0] * n, [1] * n, 1)

    def emitted() -> int:
        views: list[Window | Dropped] = [*stage.windows.values(), stage.dropped]
        return sum(sum(v.counters.emitted) for v in views)

    assert emitted() == 8
    await stage.listener().on_partitions_revoked({TP1})
    assert set(stage.windows) == {0} and len(stage.dropped) == 0
    assert emitted() == 8 and stage.dropped.counters.emitted[1] == 5
    await stage.listener().on_partitions_revoked({TP0})
    assert emitted() == 8 and not stage.windows


class SingleStaged(NamedTuple):
    stage: SingleStage
    consumer: Consumer
    restored: list[int]  # the output partitions read into the window, in order
    #: The state partitions read back after each of them.
    read_back: list[list[int]]


@pytest.fixture
async def single(monkeypatch: pytest.MonkeyPatch) -> SingleStaged:
    """A single stage (its Kafka clients made, never started) on the fake consumer, writing to
    an output topic of 3 partitions and a state topic of 2 (grown apart while it ran)."""
    settings = Settings(output_topic="out", state_dir="", topology="single")
    window = Window(1_000, 60_000)
    sink = Sink(lambda _: None, "dlq")
    restorer = new_restorer(settings)
    stage = SingleStage(settings, Core(window), sink, restorer, anyio.Event())
    consumer = Consumer()
    stage.consumer = consumer
    restored: list[int] = []
    backs: list[list[int]] = []

    async def partition_count(topic: str) -> int:
        return {"out": 3, "out.messages": 2}[topic]

    async def restore(
        partition: int,
        into: Window,
        capacity: int,
        lifecycle: object = None,
        *,
        read_back: list[int] | None = None,
    ) -> Restored:
        assert into is window and capacity == 334 and read_back is not None
        restored.append(partition)
        backs.append(read_back)
        return Restored(partition, 0, 0.0, 0, 0)

    monkeypatch.setattr(sink, "partition_count", partition_count)
    monkeypatch.setattr(restorer, "restore", restore)
    return SingleStaged(stage, consumer, restored, backs)


async def test_single_refuses_a_share_of_the_partitions(single: SingleStaged) -> None:
    with pytest.raises(SettingProblem, match="1 of 2 assigned"):
        await single.stage.assigned({RAW0})
    assert single.consumer.log == []


async def test_single_rebuilds_its_window_at_every_assignment(single: SingleStaged) -> None:
    stage, consumer, restored, read_back = single
    window = stage.window()
    for _ in range(2):
        # What another member wrote while this one held nothing must be read again.
        window.load_batch(window.hashes([b"m1"]), [0], [0], 1_000)
        assert len(window) == 1
        await stage.listener().on_partitions_assigned({RAW0, RAW1})
        assert len(window) == 0 and stage.pending == {RAW0, RAW1}
        assert consumer.log[-1] == ("pause", {RAW0, RAW1})
        for _turn in range(3):
            assert not stage.caught_up() and not stage.health.ready()[0]
            await stage.catch_up()
        assert consumer.log[-1] == ("resume", {RAW0, RAW1})
        assert stage.caught_up() and stage.health.ready()[0]
        await stage.listener().on_partitions_revoked({RAW0, RAW1})
    assert restored == [0, 1, 2, 0, 1, 2]
    # Every state partition once the window holds every output partition, whatever the counts.
    assert read_back == [[], [], [0, 1]] * 2
