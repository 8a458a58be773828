"""The batch loop's overlap (`max_batches_in_flight`): batch n + 1 is processed while batch n's
acks are in flight, and the loop goes on while a commit is under way; yet no offset is committed
before every record of its batch is acknowledged, commits keep batch order, a failed flush stops
every later commit, and a revocation or a stop settles everything in flight, commits included,
first.

What the ordering depends on stands in for the broker: a consumer that hands out the batches the
test feeds and records each commit, and acks the test releases by hand (the sink is the real one:
its flush awaits them). The real-broker proof is the integration suite, run at the default depth.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import random
from collections.abc import Callable
from typing import Any, NamedTuple

import anyio
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from anyio.abc import TaskGroup

from pipeline.config import Settings
from pipeline.kafka import Sent, Sink
from pipeline.runtime import Stage

TP = TopicPartition("raw", 0)


class Message(NamedTuple):
    offset: int


class Broker:
    """Batch k is the one message at offset k; its send's ack is `acks[k]`, released by the
    test. `log` has every step in order; `early` every commit made before its acks."""

    def __init__(self, fetch_wait_ms: int) -> None:
        self.feed: asyncio.Queue[int] = asyncio.Queue()
        self.acks: list[asyncio.Future[None]] = []
        self.log: list[str] = []
        self.early: list[int] = []
        self.fetch_wait_ms = fetch_wait_ms
        #: When set, each commit waits for it (a coordinator that answers late).
        self.gate: asyncio.Event | None = None
        #: What the next commit raises, if anything.
        self.commit_error: BaseException | None = None

    # The consumer's side.
    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        with anyio.move_on_after(timeout_ms / 1000):
            return {TP: [Message(await self.feed.get())]}
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        k = offsets[TP] - 1
        if not all(a.done() and a.exception() is None for a in self.acks[: k + 1]):
            self.early.append(k)
        if self.gate is not None:
            await self.gate.wait()
        if self.commit_error is not None:
            error, self.commit_error = self.commit_error, None
            raise error
        self.log.append(f"commit {k}")

    # The test's side.
    def ack(self, k: int, error: BaseException | None = None) -> None:
        if error is None:
            self.acks[k].set_result(None)
        else:
            self.acks[k].set_exception(error)

    def commits(self) -> list[int]:
        return [int(step.split()[1]) for step in self.log if step.startswith("commit")]


class Overlapping(Stage):
    """Each batch queues one send whose ack the test releases; checks the in-flight bound."""

    def __init__(self, broker: Broker, depth: int) -> None:
        settings = Settings(max_batches_in_flight=depth, fetch_max_wait_ms=broker.fetch_wait_ms)
        sink = Sink(lambda batch_bytes: None, "dlq")  # flush only awaits the futures
        super().__init__(settings, broker, sink, anyio.Event())
        self.broker = broker
        self.most_in_flight = 0

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        (message,) = batches[TP]
        # This batch and those whose acks or commit are outstanding.
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight) + 1)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.broker.acks.append(future)
        self.broker.log.append(f"process {message.offset}")
        return [Sent(future, "out", 0, [])]

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self.broker.log.append("revoked")


async def steps(n: int = 100) -> None:
    """Let the loop run as far as it can: it awaits nothing but the test here."""
    for _ in range(n):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not condition():
            await asyncio.sleep(0.001)


async def finished(task: asyncio.Future[None]) -> None:
    with anyio.fail_after(5):
        await task


async def started(broker: Broker, depth: int, tg: TaskGroup) -> Overlapping:
    stage = Overlapping(broker, depth)
    await stage.listener().on_partitions_assigned({TP})
    tg.start_soon(stage.run)
    return stage


async def run_acking(stage: Overlapping, count: int) -> asyncio.Future[None]:
    """Start `stage`'s loop on batches 0 to `count` - 1, each acknowledged once processed."""
    broker = stage.broker
    await stage.listener().on_partitions_assigned({TP})
    for k in range(count):
        broker.feed.put_nowait(k)
    run = asyncio.ensure_future(stage.run())
    for k in range(count):
        await until(functools.partial(lambda n: len(broker.acks) > n, k))
        broker.ack(k)
    return run


async def stop(stage: Overlapping) -> None:
    stage.stopping.set()
    await until(lambda: not stage.in_hand())


def test_depth_2_overlaps_one_batch_and_commits_in_order_after_acks() -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=20)
        async with anyio.create_task_group() as tg:
            stage = await started(broker, 2, tg)
            for k in range(3):
                broker.feed.put_nowait(k)
            await until(lambda: "process 1" in broker.log)
            await steps()
            # Batch 1 is processed while batch 0's ack is outstanding; batch 2 waits: two in flight.
            assert broker.log == ["process 0", "process 1"]
            broker.ack(1)  # out of order: batch 0 is still unacknowledged
            await steps()
            assert broker.log == ["process 0", "process 1"]
            broker.ack(0)
            await until(lambda: "commit 1" in broker.log)
            # Batch 0 acknowledged: batch 2 is processed while batch 0's commit is under way.
            assert broker.log == ["process 0", "process 1", "process 2", "commit 0", "commit 1"]
            broker.ack(2)  # the last one commits at the next empty poll
            await until(lambda: "commit 2" in broker.log)
            await stop(stage)
        assert broker.early == [] and stage.batches == 3 and stage.positions == {TP: 3}

    asyncio.run(scenario())


def test_depth_1_is_one_batch_at_a_time() -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=20)
        async with anyio.create_task_group() as tg:
            stage = await started(broker, 1, tg)
            for k in range(2):
                broker.feed.put_nowait(k)
            await until(lambda: "process 0" in broker.log)
            await steps()
            assert broker.log == ["process 0"]
            broker.ack(0)
            await until(lambda: "process 1" in broker.log)
            broker.ack(1)
            await until(lambda: "commit 1" in broker.log)
            await stop(stage)
        assert broker.log == ["process 0", "commit 0", "process 1", "commit 1"]

    asyncio.run(scenario())


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_acks_in_any_order_commit_in_batch_order_never_early(depth: int, seed: int) -> None:
    async def scenario() -> None:
        rng = random.Random(seed)
        broker = Broker(fetch_wait_ms=5)
        count = 40
        async with anyio.create_task_group() as tg:
            stage = await started(broker, depth, tg)
            for k in range(count):
                broker.feed.put_nowait(k)
            released = 0
            while released < count:
                await steps(rng.randrange(1, 30))
                pending = [k for k, a in enumerate(broker.acks) if not a.done()]
                if pending:
                    broker.ack(rng.choice(pending))
                    released += 1
            await until(lambda: broker.commits()[-1:] == [count - 1])
            await stop(stage)
        assert broker.early == []
        # Batch order; a commit takes every batch acknowledged while the one before was made.
        commits = broker.commits()
        assert commits == sorted(set(commits)) and stage.batches == count
        assert stage.most_in_flight == depth  # the bound, reached

    asyncio.run(scenario())


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failed_flush_commits_nothing_after_it(failing: int) -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=20)
        stage = Overlapping(broker, 3)
        await stage.listener().on_partitions_assigned({TP})
        for k in range(3):
            broker.feed.put_nowait(k)
        run = asyncio.ensure_future(stage.run())
        await until(lambda: "process 2" in broker.log)
        for k in (2, 1, 0):  # the later batches are acknowledged first
            broker.ack(k, KafkaTimeoutError() if k == failing else None)
        with pytest.raises(KafkaTimeoutError):
            await finished(run)
        assert broker.commits() == list(range(failing))
        assert [b.offsets for b in stage.in_flight] == [{TP: k + 1} for k in range(failing, 3)]

    asyncio.run(scenario())


def test_revocation_settles_every_batch_in_flight_first() -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=60_000)  # no empty poll: only the revocation settles
        async with anyio.create_task_group() as tg:
            stage = await started(broker, 3, tg)
            for k in range(2):
                broker.feed.put_nowait(k)
            await until(lambda: "process 1" in broker.log)
            revocation = asyncio.ensure_future(stage.listener().on_partitions_revoked({TP}))
            broker.ack(1)
            await steps()
            assert not revocation.done() and broker.commits() == []
            broker.ack(0)
            await finished(revocation)
            # Both acknowledged, then one commit of both, then the partitions go.
            assert broker.log == ["process 0", "process 1", "commit 1", "revoked"]
            assert stage.settled and not stage.ready.is_set()
            tg.cancel_scope.cancel()
        assert broker.early == []

    asyncio.run(scenario())


def test_a_failed_flush_at_revocation_fails_the_stage_and_commits_nothing_after_it() -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=60_000)
        stage = Overlapping(broker, 3)
        await stage.listener().on_partitions_assigned({TP})
        for k in range(2):
            broker.feed.put_nowait(k)
        run = asyncio.ensure_future(stage.run())
        await until(lambda: "process 1" in broker.log)
        revocation = asyncio.ensure_future(stage.listener().on_partitions_revoked({TP}))
        broker.ack(1)
        broker.ack(0, KafkaTimeoutError())
        await finished(revocation)  # aiokafka would swallow what it raises: the stage fails instead
        assert isinstance(stage.failed, KafkaTimeoutError)
        broker.feed.put_nowait(2)  # wakes the loop, which stops on the failure
        with pytest.raises(KafkaTimeoutError):
            await finished(run)
        assert broker.commits() == [] and "revoked" not in broker.log

    asyncio.run(scenario())


def test_a_stop_waits_for_the_batches_in_flight_and_commits_them() -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=60_000)  # no empty poll: only the stop settles
        stage = Overlapping(broker, 2)
        await stage.listener().on_partitions_assigned({TP})
        broker.feed.put_nowait(0)
        run = asyncio.ensure_future(stage.run())
        await until(lambda: "process 0" in broker.log)
        await steps()
        # Between batches, no lock held, but batch 0 is in hand: a stop must wait for it.
        assert stage.in_hand() and not stage.lock.locked()
        stage.stopping.set()
        broker.feed.put_nowait(1)  # fetched after the stop: left for the next owner
        await steps()
        assert not run.done() and stage.in_hand()
        broker.ack(0)
        await finished(run)
        assert broker.log == ["process 0", "commit 0"] and not stage.in_hand()

    asyncio.run(scenario())


def test_a_late_commit_holds_no_batch_back_and_a_stop_waits_for_it() -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=60_000)  # no empty poll: only the stop settles
        broker.gate = asyncio.Event()
        stage = Overlapping(broker, 2)
        run = await run_acking(stage, 4)
        await until(lambda: "process 3" in broker.log)
        await steps()
        # Batches 1-3 processed and acknowledged while the commit of batch 0 waits.
        assert broker.commits() == [] and broker.early == []
        stage.stopping.set()
        broker.feed.put_nowait(4)  # wakes the loop; fetched after the stop: not processed
        await steps()
        assert not run.done() and stage.in_hand()
        broker.gate.set()
        await finished(run)
        # Then one commit of everything acknowledged since: batches 1 to 3.
        assert broker.commits() == [0, 3] and stage.batches == 4 and not stage.in_hand()

    asyncio.run(scenario())


def test_a_commit_that_fails_in_the_background_stops_the_stage() -> None:
    async def scenario() -> None:
        broker = Broker(fetch_wait_ms=20)
        broker.commit_error = KafkaTimeoutError()
        stage = Overlapping(broker, 2)
        run = await run_acking(stage, 3)
        # The loop learns of it at its next settle, and raises it, as from an awaited commit.
        with pytest.raises(KafkaTimeoutError):
            await finished(run)
        assert broker.commits() == [] and stage.batches == 0

    asyncio.run(scenario())


def test_a_failed_commit_left_by_a_stop_that_gave_up_is_not_reported_as_lost() -> None:
    async def scenario() -> list[dict[str, Any]]:
        reported: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reported.append(ctx))
        broker = Broker(fetch_wait_ms=60_000)
        broker.gate, broker.commit_error = asyncio.Event(), KafkaTimeoutError()
        stage = Overlapping(broker, 2)
        run = await run_acking(stage, 2)
        await until(lambda: stage.committing is not None)
        run.cancel()  # the stop's bound ran out: the loop is gone, its commit is not
        broker.gate.set()
        await steps()
        task, stage.committing = stage.committing, None
        # Failed (asking it what would mark it seen): nothing was committed.
        assert task is not None and task.done() and not task.cancelled()
        assert broker.commits() == []
        del task
        gc.collect()  # a task dropped with an exception nobody saw is reported here
        return reported

    assert asyncio.run(scenario()) == []
