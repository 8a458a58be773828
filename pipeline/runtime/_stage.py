"""What every consuming stage shares: the batch loop, ownership hand-over, and its guards.

`getmany` → the stage's work, which queues the batch's sends → the batch joins those in flight
→ the oldest are settled (every ack awaited), in batch order, until fewer than
`max_batches_in_flight` remain: batch n's acks arrive while batch n + 1 is fetched and
processed. An acknowledged batch joins the commits: one commit at a time, in the background, of
the offsets of every batch acknowledged since the one before, so the loop does not wait a
coordinator round trip per batch and a busy coordinator gets fewer, larger commits. A failed
flush leaves every later batch uncommitted. The batch lock is held while a batch is processed
or settled; a revocation takes it and settles everything in flight, commits included, before
the partitions go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, NamedTuple

import anyio
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalGenerationError, UnknownMemberIdError

from ..config import Settings
from ..errors import StageFailed
from ..kafka import Sent, Sink
from ..ops import Health

log = logging.getLogger("pipeline.kafka")

#: Attempts at a rebalance callback before the process gives up (aiokafka swallows failures).
LISTENER_ATTEMPTS: Final = 3


class InFlight(NamedTuple):
    """A batch processed and queued: what to flush, then the offsets to commit."""

    sent: list[Sent]
    offsets: dict[TopicPartition, int]
    started: float


class Stage:
    """A consumer group member whose batches are written through `sink`, committed after acks."""

    name = "stage"

    def __init__(
        self, settings: Settings, consumer: AIOKafkaConsumer, sink: Sink, stopping: anyio.Event
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.sink = sink
        self.stopping = stopping
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.failed: BaseException | None = None
        self.batches = 0
        self.depth = settings.max_batches_in_flight
        #: Batches processed whose acks are outstanding, oldest first.
        self.in_flight: deque[InFlight] = deque()
        #: Batches acknowledged, for the next commit; the commit under way (one at a time).
        self.acked: list[InFlight] = []
        self.committing: asyncio.Task[None] | None = None
        #: A batch is being processed (left True if that is cut short: its outcome is unknown).
        self.processing = False
        self.positions: dict[TopicPartition, int] = {}
        #: Partitions assigned whose state `catch_up` has yet to restore (paused till then).
        self.pending: set[TopicPartition] = set()
        #: Called per commit: each of its batches' seconds from processing to committed, and
        #: the commit's seconds.
        self.on_commit: Callable[[Sequence[float], float], None] | None = None
        #: /livez and /readyz: this stage's loop beats, and it is ready once assigned and restored.
        self.health = Health(settings.liveness_timeout_s)

    def listener(self) -> ConsumerRebalanceListener:
        return _Listener(self)

    # -- hooks -----------------------------------------------------------------------------

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Before the first batch of `partitions` (restore state)."""

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """After every batch in flight is committed, before `partitions` go (drop state)."""

    async def tick(self) -> None:
        """A fetch brought nothing (lock held): time-driven work, queued into `in_flight`."""

    async def close(self) -> None:
        """At shutdown, after the last batch, before the clients stop (save state)."""

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        """Queue what the batch causes; return what to flush before committing."""
        raise NotImplementedError

    async def commit(self, offsets: dict[TopicPartition, int]) -> bool:
        """Commit the batch's offsets (the next to consume); False if the group refused."""
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalGenerationError, UnknownMemberIdError) as exc:
            # The group moved on without us (evicted, e.g. a long pause): the new owner replays
            # the batch, and its window (restored from the output) drops what we wrote.
            log.warning(
                "commit refused, partitions moved", extra={"stage": self.name, "error": repr(exc)}
            )
            return False
        return True

    async def restore_step(self) -> set[TopicPartition]:
        """Restore part of the state `pending` waits for (one partition's worth); return the
        pending partitions it made ready."""
        return set(self.pending)

    # -- restores between batches ------------------------------------------------------------

    def hold(self, partitions: set[TopicPartition]) -> None:
        """Pause `partitions` until `restore_step` has restored their state (from `assigned`):
        aiokafka sends no heartbeat until a rebalance callback returns, so a restore there that
        takes longer than the session timeout (a million messages rebuilt from the output)
        would get this member evicted, its partitions handed out again and restored once more.
        Between batches, the loop's heartbeats go on."""
        if partitions:
            self.consumer.pause(*partitions)
            self.pending.update(partitions)

    def caught_up(self) -> bool:
        """Nothing left to restore: every owned partition can be processed."""
        return not self.pending

    async def catch_up(self) -> None:
        """One restore step under the batch lock (a revocation waits for at most one step),
        then the partitions it made ready resume: those restored so far are processed while the
        others are restored, one step per turn of the loop."""
        if not self.pending or not self.ready.is_set() or self.stopping.is_set():
            return
        ready: set[TopicPartition] = set()

        async def step() -> None:
            ready.update(await self.restore_step())

        async with self.lock:
            if not self.pending:  # revoked while the lock was awaited
                return
            await self.guarded("restore", step)
            if self.failed is not None:
                return
            ready &= self.pending
            self.pending -= ready
            if ready:
                self.consumer.resume(*ready)
        if not self.pending and self.ready.is_set():
            self.health.set_ready(True, self.name)

    def admit(self, batches: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, list[Any]]:
        """The records of a batch the stage can process now (called with the lock held): those
        of a pending partition, fetched before its pause, are sought back and fetched again
        once its state is restored."""
        pending = self.pending
        if not pending:
            return batches
        for tp in pending.intersection(batches):
            self.consumer.seek(tp, batches[tp][0].offset)
        return {tp: m for tp, m in batches.items() if tp not in pending}

    # -- the loop --------------------------------------------------------------------------

    async def run_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        self.processing = True
        sent = await self.process(batches)
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
        self.in_flight.append(InFlight(sent, offsets, started))
        self.processing = False
        await self.settle(self.depth - 1)

    async def settle(self, keep: int = 0) -> None:
        """Flush the oldest batches in flight, in order, until `keep` are left, and start their
        commit; with `keep` 0, also wait until everything acknowledged is committed (call with
        the lock held)."""
        self._reap()
        while len(self.in_flight) > keep:
            batch = self.in_flight[0]
            # Every record acknowledged, or its dead letter (what the broker refuses): then commit.
            await self.sink.flush(batch.sent)
            self.in_flight.popleft()
            # A batch without offsets (time-outs fired on a tick) has nothing to commit.
            if batch.offsets:
                self.acked.append(batch)
        if self.acked and (self.committing is None or self.committing.done()):
            self._reap()
            self.committing = asyncio.create_task(self._commits())
            # What it raises is re-raised by `_reap`; a stop that gave up never reaps it.
            self.committing.add_done_callback(_retrieve)
        if not keep and self.committing is not None:
            await asyncio.shield(self.committing)
            self._reap()

    def _reap(self) -> None:
        """Raise what the last commit task raised, once it is done."""
        task = self.committing
        if task is not None and task.done():
            self.committing = None
            task.result()

    async def _commits(self) -> None:
        """Commit the acknowledged batches, each commit all that wait (those acknowledged
        meanwhile join the next), until none does."""
        while self.acked:
            batches, self.acked = self.acked, []
            offsets: dict[TopicPartition, int] = {}
            for batch in batches:
                offsets.update(batch.offsets)
            started = time.perf_counter()
            if not await self.commit(offsets):
                continue
            self.positions.update(offsets)
            done = time.perf_counter()
            self.batches += len(batches)
            if self.on_commit is not None:
                self.on_commit([done - b.started for b in batches], done - started)

    @property
    def settled(self) -> bool:
        """Everything processed is acknowledged and committed."""
        return not self.processing and not self.in_flight and not self.acked and not self.committing

    def in_hand(self) -> bool:
        """Work a stop waits for: a batch processed or settled, or a rebalance step."""
        return self.lock.locked() or not self.settled

    async def run(self) -> None:
        fetch_wait = self.settings.fetch_max_wait_ms
        max_records = self.settings.batch_max_records
        health, name = self.health, self.name
        health.beat(name)
        while not self.stopping.is_set():
            self.raise_failure()
            await self.catch_up()
            # Restores left to do: take what is fetched already, wait for nothing.
            wait = 0 if self.pending and self.ready.is_set() else fetch_wait
            batches = await self.consumer.getmany(timeout_ms=wait, max_records=max_records)
            if not batches:
                health.idle(name)
                async with self.lock:
                    await self.tick()
                    if not self.settled:  # nothing to overlap them with: commit them now
                        await self.settle()
                continue
            if not await self._acquire_ready():
                continue
            try:
                # A rebalance may have run while the batch was fetched: drop what is not ours.
                owned = self.consumer.assignment()
                batches = self.admit({tp: m for tp, m in batches.items() if tp in owned and m})
                if batches:
                    await self.run_batch(batches)
            finally:
                self.lock.release()
            health.beat(name)
        self.raise_failure()
        async with self.lock:  # the stop's bound (Processor.run) may cut this short
            await self.settle()

    def raise_failure(self) -> None:
        if self.failed is not None:
            raise self.failed

    async def _acquire_ready(self) -> bool:
        """Take the batch lock at a moment when no rebalance is between revoke and assign;
        False when stopping (a stop is honoured in this wait too)."""
        while not self.stopping.is_set():
            with anyio.move_on_after(0.2):
                await self.ready.wait()
            if not self.ready.is_set():
                continue
            await self.lock.acquire()
            if self.ready.is_set():
                return True
            self.lock.release()
        return False

    async def guarded(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run a rebalance step, retried; a persisting failure stops the process (aiokafka
        would swallow it and leave the stage waiting forever)."""
        for attempt in range(1, LISTENER_ATTEMPTS + 1):
            try:
                await step()
                return
            except StageFailed as exc:
                self.fail(exc)
                return
            except Exception as exc:
                log.warning(
                    "rebalance step failed",
                    extra={
                        "stage": self.name,
                        "step": what,
                        "attempt": attempt,
                        "error": repr(exc),
                    },
                )
                if attempt == LISTENER_ATTEMPTS:
                    self.fail(StageFailed(f"{self.name}: {what} failed {attempt} times: {exc!r}"))
                    return
                await asyncio.sleep(0.5 * attempt)

    def fail(self, exc: BaseException) -> None:
        self.failed = exc
        self.stopping.set()
        self.ready.set()  # wake the loop, which raises it


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark what `task` raised as seen (asyncio logs it otherwise when the task is dropped)."""
    if not task.cancelled():
        task.exception()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: Any) -> None:
        stage = self.stage
        # The lock is held while a batch is processed or settled; with it, everything in flight
        # is committed before the partitions go.
        async with stage.lock:
            try:
                await stage.settle()
            except Exception as exc:
                # Not retried: no later batch may commit past one whose flush failed.
                stage.fail(exc)
                return
            stage.ready.clear()
            stage.health.set_ready(False, stage.name)
            log.info(
                "partitions revoked",
                extra={"stage": stage.name, "partitions": sorted(str(tp) for tp in revoked)},
            )
            await stage.guarded("revoke", lambda: stage.revoked(set(revoked)))
            stage.pending.difference_update(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        stage = self.stage
        # aiokafka may fetch for the new assignment before this returns; `ready` holds the
        # batch back until the stage's state for it is restored.
        await stage.guarded("assign", lambda: stage.assigned(set(assigned)))
        if stage.failed is None:
            stage.ready.set()
            stage.health.set_ready(stage.caught_up(), stage.name)
        log.info(
            "partitions assigned",
            extra={"stage": stage.name, "partitions": sorted(str(tp) for tp in assigned)},
        )
