"""Stage *dedupe* of topology `partitioned`: repartition partition p → window p → output p.

Group `<group>.dedupe` on the repartition topic. Each owned partition p has its own window
(capacity `window_max_messages // P`, so an instance's memory falls as instances are added),
restored from output partition p, its changelog, before p's first batch and dropped when p goes.
With `state_dir` set, window p is snapshotted (pipeline/state/_snapshot.py) when p goes, at
shutdown and every `snapshot_interval_s` (one window at a time, copied between batches and
written in the background); on assignment a usable snapshot seeds it and only the output
records written after it are read. What passes is written to output partition p with
the same key, value, headers and timestamp; with the state topic on, the state record of each
event that passed goes to state partition p in the same batch (in the same transaction with
`exactly_once`).

With `exactly_once`, output partition p is written by its own transactional producer
(_transactions.py): each batch's records for p and its offsets of p commit in one transaction,
and opening p's producer on assignment fences the previous owner before p is restored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

import anyio
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas import PROVIDERS, STATUS_INDEX

from ..config import Settings, final_timeouts, state_topic
from ..core import Lifecycle, LifecycleCounters, OutputRecord, Timeouts
from ..errors import StageFailed
from ..kafka import (
    METADATA_MAX_AGE_MS,
    PartitionLost,
    PartitionWriters,
    Record,
    Sent,
    Sink,
    compression_options,
    kafka_options,
    new_group_consumer,
)
from ..state import (
    Restorer,
    Window,
    WindowCounters,
    encode_snapshot,
    forwarded,
    load_snapshot,
    snapshot_usable,
    write_snapshot,
)
from ._route import repartition_topic
from ._stage import InFlight, Stage

log = logging.getLogger("pipeline.kafka")

#: What the stage reads of a fetched record, and the output record it forwards (in C).
_KEY, _HEADERS, _TIMESTAMP = attrgetter("key"), attrgetter("headers"), attrgetter("timestamp")
_FORWARD = attrgetter("key", "value", "headers", "timestamp")
STATUSES = sorted(STATUS_INDEX, key=STATUS_INDEX.__getitem__)
#: Transactions of one partition that may fail in a row (each time rebuilt and retried) before
#: the stage stops: a failure that persists is not a broker's passing fault.
TRANSACTION_ATTEMPTS: Final = 3
#: A window whose partition had no batch this long follows the wall clock (less this) for its
#: time-outs (s).
IDLE_S: Final = 10


class Dropped:
    """What the windows dropped so far counted (a partition revoked or lost), summed with the
    windows held by the metrics so that their counters never go back at a rebalance."""

    def __init__(self) -> None:
        self.counters = WindowCounters()

    def __len__(self) -> int:
        return 0


def window_capacity(settings: Settings, partitions: int) -> int:
    return max(1, settings.window_max_messages // partitions)


class DedupeStage(Stage):
    name = "dedupe"

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        restorer: Restorer,
        partitions: int,
        stopping: anyio.Event,
    ) -> None:
        self.group = f"{settings.group_id}.dedupe"
        consumer = new_group_consumer(settings, self.group)
        super().__init__(settings, consumer, sink, stopping)
        self.restorer = restorer
        self.partitions = partitions
        self.capacity = window_capacity(settings, partitions)
        self.windows: dict[int, Window] = {}
        #: Per window with the state topic on: its lifecycle (state records, time-outs).
        self.lifecycles: dict[int, Lifecycle] = {}
        #: What they count, shared (a window dropped at a rebalance takes nothing away).
        self.lifecycle_counters = LifecycleCounters()
        #: When each window last had a batch (monotonic s), for the idle rule of time-outs.
        self.last_batch: dict[int, float] = {}
        self.ticked_at = time.monotonic()
        self.topic = repartition_topic(settings)
        self.state_topic = state_topic(settings)
        self.tolerance_ms = settings.clock_skew_tolerance_s * 1000
        #: Events forwarded, by (provider, status) code (the route stage's core counts events
        #: before dedupe).
        self.emitted: Counter[tuple[int, int]] = Counter()
        self.writers = new_writers(settings) if settings.exactly_once else None
        #: Transactions failed in a row, by partition (see TRANSACTION_ATTEMPTS).
        self.failed_transactions: dict[int, int] = {}
        if self.writers is not None:
            self.depth = 1  # each batch commits inside its own transactions: nothing to overlap
        self.dropped = Dropped()
        #: Newest record time forwarded per partition (ms), for the snapshots.
        self.newest: dict[int, int] = {}
        #: When a window was last snapshotted, and when any was (monotonic s).
        self.snapshot_at: dict[int, float] = {}
        self.saved_at = time.monotonic()
        #: Windows that had batches since their last snapshot.
        self.unsaved: set[int] = set()
        #: The snapshot being encoded and written in the background, if any.
        self.saving: asyncio.Task[None] | None = None

    def events_out(self) -> Counter[tuple[str, str]]:
        return Counter({(PROVIDERS[p], STATUSES[s]): n for (p, s), n in self.emitted.items()})

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic], listener=self.listener())

    def new_window(self) -> Window:
        # A window that is snapshotted hashes with a key of its own (the key is in the dump).
        key = os.urandom(16) if self.settings.state_dir else None
        return Window(
            self.capacity,
            self.settings.window_ttl_s * 1000,
            hash_key=key,
            lifecycle=self.state_topic is not None,
        )

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """New partitions are held (paused) until `restore_step` opens their windows."""
        new = {tp for tp in partitions if tp.partition not in self.windows}
        if self.writers is not None:
            for tp in sorted(new):
                # Fence p's previous owner first: its open transaction is aborted and it can
                # write no more, so the (read_committed) restore sees p's final state.
                await self.writers.open(tp.partition)
        self.hold(new)

    async def restore_step(self) -> set[TopicPartition]:
        tp = min(self.pending)
        self.windows[tp.partition] = await self.open_window(tp.partition)
        self.last_batch[tp.partition] = time.monotonic()
        return {tp}

    def new_lifecycle(self, partition: int, window: Window) -> Lifecycle | None:
        if self.state_topic is None:
            return None
        lifecycle = Lifecycle(
            window,
            Timeouts(*final_timeouts(self.settings), window.max_messages),
            self.lifecycle_counters,
        )
        self.lifecycles[partition] = lifecycle
        return lifecycle

    async def open_window(self, partition: int) -> Window:
        """Window p from its snapshot and the output after it when the snapshot is usable,
        else rebuilt (bounded) from the output."""
        state_dir = self.settings.state_dir
        if state_dir:
            snap = await anyio.to_thread.run_sync(
                load_snapshot,
                state_dir,
                self.group,
                self.settings.output_topic,
                partition,
                self.capacity,
                self.settings.window_ttl_s * 1000,
            )
            if snap is not None:
                begin, end = await self.restorer.offsets(partition)
                if snapshot_usable(snap, begin, end):
                    lifecycle = self.new_lifecycle(partition, snap.window)
                    if lifecycle is not None and lifecycle.timeouts is not None:
                        lifecycle.timeouts.load(snap.waiting)
                    await self.restorer.resume(partition, snap.window, snap.offset, end, lifecycle)
                    self.newest[partition] = snap.newest_ts
                    return snap.window
                log.warning(
                    "ignoring stale snapshot",
                    extra={
                        "partition": partition,
                        "offset": snap.offset,
                        "log_start": begin,
                        "end_offset": end,
                    },
                )
        window = self.new_window()
        lifecycle = self.new_lifecycle(partition, window)
        await self.restorer.restore(partition, window, self.capacity, lifecycle)
        return window

    async def save(self, partitions: Iterable[int], wait: bool = True) -> None:
        """Snapshot windows `partitions` when settled (everything forwarded is acked, so each
        window reflects its output partition up to the end offset asked for now; unsettled, the
        windows hold what the output may not). Each window is copied here and encoded and
        written in a worker thread (``wait`` False: in the background, while batches go on).
        A failure is logged: the next assignment then rebuilds from the output."""
        if not self.settings.state_dir or not self.settled:
            return
        await self.saved()  # one snapshot task at a time
        frozen: list[tuple[int, Window, int, int, Callable[[], bytes]]] = []
        for p in partitions:
            window = self.windows.get(p)
            if window is None:
                continue
            try:
                _, end = await self.restorer.offsets(p)
            except Exception as exc:
                log.warning("snapshot failed", extra={"partition": p, "error": repr(exc)})
                continue
            lifecycle = self.lifecycles.get(p)
            waiting = (
                lifecycle.timeouts.dump_later()
                if lifecycle is not None and lifecycle.timeouts is not None
                else bytes
            )
            frozen.append((p, window.frozen(), end, self.newest.get(p, 0), waiting))
            self.snapshot_at[p] = time.monotonic()
            self.unsaved.discard(p)
        self.saved_at = time.monotonic()
        if not frozen:
            return
        self.saving = asyncio.create_task(self._write(frozen))
        if wait:
            await self.saved()

    async def saved(self) -> None:
        """The snapshot being written, if any, is done."""
        if self.saving is not None:
            task, self.saving = self.saving, None
            await task

    async def _write(self, frozen: list[tuple[int, Window, int, int, Callable[[], bytes]]]) -> None:
        state_dir, topic = self.settings.state_dir, self.settings.output_topic
        for p, window, end, newest, waiting in frozen:
            try:
                path = await anyio.to_thread.run_sync(
                    _encode_and_write, state_dir, self.group, topic, p, window, end, newest, waiting
                )
            except Exception as exc:
                log.warning("snapshot failed", extra={"partition": p, "error": repr(exc)})
                continue
            log.info(
                "window snapshotted",
                extra={"partition": p, "offset": end, "messages": len(window), "path": str(path)},
            )

    def due_snapshot(self, now: float) -> int | None:
        """The window to snapshot at `now` (monotonic s), if one is due: of the windows that
        had batches since their last snapshot, the one snapshotted longest ago; one at a time,
        each at most every `snapshot_interval_s`, spread over it (copying a window stalls the
        loop)."""
        interval = self.settings.snapshot_interval_s
        if not self.unsaved or not self.settings.state_dir or self.saving is not None:
            return None
        if now - self.saved_at < interval / len(self.windows):
            return None
        p = min(self.unsaved, key=lambda p: self.snapshot_at.get(p, 0.0))
        return p if now - self.snapshot_at.get(p, -interval) >= interval else None

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        await self.save(sorted(tp.partition for tp in partitions))
        for tp in partitions:
            self.drop(tp.partition)
            if self.writers is not None:
                await self.writers.close(tp.partition)

    def drop(self, partition: int) -> None:
        self.unsaved.discard(partition)
        self.lifecycles.pop(partition, None)
        self.last_batch.pop(partition, None)
        window = self.windows.pop(partition, None)
        if window is not None:
            self.dropped.counters.add(window.counters)
        self.newest.pop(partition, None)

    async def commit(self, offsets: dict[TopicPartition, int]) -> bool:
        if self.writers is not None:
            return True  # committed inside each partition's transaction (process)
        return await super().commit(offsets)

    async def close(self) -> None:
        await self.saved()  # also when the last snapshot is skipped (unsettled)
        await self.save(sorted(self.windows))
        self.windows.clear()
        if self.writers is not None:
            await self.writers.close_all()

    async def run_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        await super().run_batch(batches)
        await self.tick()

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        wall_ms = time.time_ns() // 1_000_000
        sent: list[Sent] = []
        for tp, messages in batches.items():
            window = self.windows.get(tp.partition)
            if window is None:  # lost (fenced) since: the group is rebalancing it away
                continue
            stamps = list(map(_TIMESTAMP, messages))
            stamp = max(stamps)
            if stamp > self.newest.get(tp.partition, -1):
                self.newest[tp.partition] = stamp
            keep = forwarded(
                window,
                list(map(_KEY, messages)),
                list(map(_HEADERS, messages)),
                stamps,
                wall_ms,
                self.tolerance_ms,
                self.emitted,
            )
            records: list[Record] = []
            states: list[OutputRecord] = []
            lifecycle = self.lifecycles.get(tp.partition)
            self.last_batch[tp.partition] = time.monotonic()
            self.unsaved.add(tp.partition)
            kept = list(compress(messages, keep))
            if kept:
                # Forwarded as fetched: the fetcher's headers are a list, as aiokafka's batch
                # builder takes (see pipeline/kafka/_fetch.py).
                records = list(map(_FORWARD, kept))
                if lifecycle is not None:
                    # State records of what passed only (values decoded for them alone).
                    ours = [m for m in kept if m.key is not None]
                    states = lifecycle.emitted_values(
                        [m.value for m in ours], [m.key for m in ours], [m.timestamp for m in ours]
                    )
            if lifecycle is not None:
                states += lifecycle.expire()
            sent += await self.write(tp.partition, records, states, {tp: messages[-1].offset + 1})
        return sent

    async def write(
        self,
        partition: int,
        records: list[Record],
        states: list[OutputRecord],
        offsets: dict[TopicPartition, int],
    ) -> list[Sent]:
        """Queue (or with exactly-once, commit) records and state records of window p."""
        if self.writers is None:
            sent = []
            if records:
                sent += await self.sink.send(
                    self.settings.output_topic, records, [partition] * len(records)
                )
            if states and self.state_topic is not None:
                sent += await self.sink.send(self.state_topic, states, [partition] * len(states))
            return sent
        try:
            # Also without records: the batch's offsets commit in the transaction.
            await self.writers.write(
                partition,
                records,
                offsets,
                self.group,
                {self.state_topic: states} if states and self.state_topic else None,
            )
        except PartitionLost as exc:
            # Another member owns p now and replays this batch; the group rebalances us.
            self.drop(partition)
            log.warning("partition lost", extra={"stage": self.name, "error": str(exc)})
        except KafkaError as exc:
            failures = self.failed_transactions.get(partition, 0) + 1
            if failures >= TRANSACTION_ATTEMPTS:
                raise StageFailed(
                    f"{self.name}: {failures} transactions of output partition {partition} "
                    f"failed in a row, the last with {exc!r}"
                ) from exc
            self.failed_transactions[partition] = failures
            log.warning(
                "transaction failed; partition rebuilt from the output",
                extra={"stage": self.name, "partition": partition, "error": repr(exc)},
            )
            await self.rebuild(partition)
        else:
            self.failed_transactions.pop(partition, None)
        return []

    async def rebuild(self, partition: int) -> None:
        """Take partition p afresh after a failed transaction (a broker lost mid-write leaves
        aiokafka's producer unusable): nothing of it is visible and its offsets are not
        committed, but the window already holds its events. As a new owner would: the window
        dropped, the consumer back at the committed offset, the writer reopened (the broker
        aborts what it still holds open) and the window restored from the output."""
        self.drop(partition)
        tp = TopicPartition(self.topic, partition)

        async def step() -> None:
            committed = (await self.consumer.seek_to_committed(tp))[tp]
            if not committed:  # aiokafka seeks only past offset 0
                await self.consumer.seek_to_beginning(tp)
            await self.assigned({tp})

        await self.guarded("rebuild", step)

    async def tick(self) -> None:
        """After each batch and when idle: the idle rule of time-outs, then a snapshot if one
        is due."""
        await self.expire_idle()
        if self.saving is not None and self.saving.done():
            await self.saved()
        due = self.due_snapshot(time.monotonic())
        if due is not None:
            await self.settle()
            await self.save([due], wait=False)

    async def expire_idle(self) -> None:
        """The idle rule of time-outs, at most once a second: a window whose partition had no
        batch for `IDLE_S` times out by the wall clock (less `IDLE_S`), so the time-outs of a
        quiet partition fire within that of their deadline, not at its next record. The
        window's clock is not moved: a replay of old input after a pause still dedupes."""
        now = time.monotonic()
        if now - self.ticked_at < 1.0 or not self.lifecycles:
            return
        self.ticked_at = now
        wall_ms = time.time_ns() // 1_000_000
        started = time.perf_counter()
        sent: list[Sent] = []
        for p, lifecycle in list(self.lifecycles.items()):
            if not lifecycle.timeouts or now - self.last_batch.get(p, now) < IDLE_S:
                continue
            states = lifecycle.expire(idle_ms=wall_ms - IDLE_S * 1000)
            if states:
                sent += await self.write(p, [], states, {})
        if sent:
            self.in_flight.append(InFlight(sent, {}, started))


def _encode_and_write(
    state_dir: str,
    group: str,
    topic: str,
    partition: int,
    window: Window,
    end: int,
    newest: int,
    waiting: Callable[[], bytes],
) -> Path:
    """A window's snapshot, encoded and written (in a worker thread: `window` is a frozen
    copy, `waiting` the dump of its waiting messages)."""
    data = encode_snapshot(group, topic, partition, window, end, newest, waiting())
    return write_snapshot(state_dir, group, topic, partition, data)


def new_writers(settings: Settings) -> PartitionWriters:
    return PartitionWriters(
        settings.group_id,
        settings.output_topic,
        {
            **kafka_options(settings),
            **compression_options(settings),
            "linger_ms": settings.linger_ms,
            "metadata_max_age_ms": METADATA_MAX_AGE_MS,
        },
    )
