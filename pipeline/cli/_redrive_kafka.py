"""`python -m pipeline redrive` against Kafka: read the dead-letter topic without a group, copy
the selected dead letters to the raw topic, at least once.

The consumer is assigned the partitions (no group, nothing committed) and seeks to the start
of the selection; it reads up to the end offsets taken at start, so the run ends however much is
written meanwhile (its own copies included, when a copy is dead-lettered again). Copies are
written through the processor's idempotent producer (acks=all) with the sink's batch queue,
and the run reports done only after every copy is acknowledged. A dead letter is copied again
by a second run: the processor's dedupe window drops the events already emitted.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import IO, Any, Final

import anyio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ..config import Settings
from ..errors import AuthenticationFailed, BrokerUnreachable, ConfigError, TopicProblem
from ..kafka import (
    METADATA_MAX_AGE_MS,
    Record,
    Sent,
    Unreadable,
    check_topics,
    close_now,
    install,
    kafka_options,
    new_producer,
    partition_for,
    queue,
    start_with_retry,
)
from ._redrive import Copy, Selection, Tally, copy_of, target_partition

log = logging.getLogger("pipeline.redrive")

#: Exit code of a stop that gave up on copies not yet acknowledged (as `run`'s).
EXIT_UNACKNOWLEDGED: Final = 3
#: Records per read; batches of copies in flight before the oldest is awaited.
READ_RECORDS: Final = 2000
MAX_BATCHES_IN_FLIGHT: Final = 64
#: Extra time, past --startup-timeout-s, for one client's start that hangs (no answer at all).
_START_SLACK_S: Final = 5.0
#: The part of --shutdown-timeout-s kept for closing the clients after a signal.
_CLOSE_RESERVE_S: Final = 1.0


class Redrive:
    """One redrive run; `main` returns its exit code."""

    def __init__(
        self,
        settings: Settings,
        selection: Selection,
        target: str,
        *,
        progress_s: float = 5.0,
        dry_run: bool = False,
        out: IO[str] | None = None,
    ) -> None:
        self.settings = settings
        self.selection = selection
        self.source = settings.dead_letter_topic
        self.target = target
        self.progress_s = progress_s
        self.dry_run = dry_run
        self.out = out or sys.stderr
        self.tally = Tally()
        self.stopping = anyio.Event()
        self.pending: deque[tuple[Sent, Sequence[Copy]]] = deque()
        self.unacknowledged = 0  # copies queued and not (yet) acknowledged
        self.remaining: dict[TopicPartition, int] = {}  # partition → end offset of the run
        self.next_offset: dict[TopicPartition, int] = {}  # partition → next offset to read
        self.total = 0  # dead letters in the range to read
        self.started = time.monotonic()
        self._last_progress = self.started
        self._target_partitions = 1
        self.interrupted = False
        self._startup: anyio.CancelScope | None = None

    # ------------------------------------------------------------------------ the run

    async def main(self) -> int:
        """Run to the end of the range, or until SIGTERM/SIGINT; the exit code (summary
        printed). Errors propagate (see `run_redrive`)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg.cancel_scope)
            await self._run()
            tg.cancel_scope.cancel()
        # A stop whose flush outlived --shutdown-timeout-s was cancelled with copies in flight.
        return self._finish(EXIT_UNACKNOWLEDGED if self.unacknowledged else 0)

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("stopping", extra={"signal": signal.Signals(signum).name})
                self.stopping.set()
                self.interrupted = True
                if self._startup is not None:
                    self._startup.cancel()  # nothing in hand yet: abandon start-up at once
                # Everything, the flush of the copies in flight included, ends by then (the
                # clients' closing gets the last moment of it).
                bound = max(0.5, self.settings.shutdown_timeout_s - _CLOSE_RESERVE_S)
                scope.deadline = min(scope.deadline, anyio.current_time() + bound)
                return

    async def _run(self) -> None:
        clients: list[Any] = []  # the consumer, then the producer (None in a dry run)
        try:
            with anyio.CancelScope() as self._startup:
                try:
                    with anyio.fail_after(self.settings.startup_timeout_s + _START_SLACK_S):
                        await self._start(clients)
                except TimeoutError:
                    raise BrokerUnreachable(
                        f"Kafka at {self.settings.bootstrap_servers} not reachable after "
                        f"{self.settings.startup_timeout_s}s"
                    ) from None
            self._startup = None
            if self.stopping.is_set():
                return
            await self._copy(*clients)
            await self._flush()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close(clients)

    async def _start(self, clients: list[Any]) -> None:
        """Check the topics, start the consumer and the producer (into `clients`), seek."""
        settings = self.settings
        await self._check_topics()
        install()  # records aiokafka cannot parse come out as `Unreadable`, not an exception
        consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=settings.isolation_level,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        await start_with_retry(consumer, "consumer", settings)
        clients.append(consumer)
        producer = None
        if not self.dry_run:
            producer = new_producer(settings)
            await start_with_retry(producer, "producer", settings)
        clients.append(producer)
        await self._seek(consumer)

    async def _check_topics(self) -> None:
        """Stop at once (exit 2) on a missing dead-letter or target topic, or a `--partition`
        the dead-letter topic does not have."""
        settings = self.settings
        admin = AIOKafkaAdminClient(**kafka_options(settings))
        await start_with_retry(admin, "admin", settings)
        try:
            roles = {self.source: "dead-letter (--dead-letter-topic)"}
            roles.setdefault(self.target, "target (--to-topic, default: first --input-topics)")
            counts = await check_topics(admin, roles)
        finally:
            await admin.close()
        partition = self.selection.partition
        if partition is not None and partition >= counts[self.source]:
            raise ConfigError(
                f"--partition {partition}: dead-letter topic {self.source!r} has "
                f"{counts[self.source]} partitions"
            )
        self._target_partitions = counts[self.target]

    async def _seek(self, consumer: Any) -> None:
        """Assign the dead-letter partitions and seek each to the start of the selection; the
        end offsets taken now bound the run."""
        parts = consumer.partitions_for_topic(self.source)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(self.source) or set()
        selection = self.selection
        tps = [
            TopicPartition(self.source, p) for p in sorted(parts) if selection.takes_partition(p)
        ]
        consumer.assign(tps)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        since: dict[TopicPartition, Any] = {}
        if selection.since_ms is not None:
            # The first offset stamped at or after --since: every earlier one is stamped before.
            since = await consumer.offsets_for_times({tp: max(0, selection.since_ms) for tp in tps})
        for tp in tps:
            start, stop = selection.offset_range(tp.partition, begins[tp], ends[tp])
            if tp in since:
                found = since[tp]
                start = stop if found is None else max(start, min(found.offset, stop))
            if start < stop:
                consumer.seek(tp, start)
                self.next_offset[tp] = start
                self.remaining[tp] = stop
                self.total += stop - start
        consumer.pause(*[tp for tp in tps if tp not in self.remaining])
        log.info(
            "redrive started",
            extra={
                "source": self.source,
                "target": self.target,
                "ranges": {str(tp.partition): end for tp, end in self.remaining.items()},
            },
        )

    async def _copy(self, consumer: Any, producer: Any) -> None:
        selection = self.selection
        while self.remaining and not self.stopping.is_set():
            batches = await consumer.getmany(
                *self.remaining, timeout_ms=200, max_records=READ_RECORDS
            )
            copies: list[Copy] = []
            for tp, messages in batches.items():
                end = self.remaining.get(tp)
                if end is None:
                    continue
                for m in messages:
                    if m.offset >= end:
                        break
                    self._take(m, selection, copies)
                    self.next_offset[tp] = m.offset + 1
            if copies and not self.dry_run:
                await self._send(producer, copies)
            for tp, end in list(self.remaining.items()):
                if await consumer.position(tp) >= end:
                    del self.remaining[tp]
                    consumer.pause(tp)
            self._progress()

    def _take(self, m: Any, selection: Selection, copies: list[Copy]) -> None:
        tally = self.tally
        if type(m) is Unreadable:
            tally.read["UnreadableRecord"] += 1
            tally.skipped["unreadable"] += 1
            return
        made = copy_of(m.topic, m.partition, m.offset, m.timestamp, m.headers, m.value or b"")
        error_class = made.error_class
        tally.read[error_class] += 1
        if not selection.matches(m.partition, m.offset, m.timestamp, error_class):
            return
        tally.selected[error_class] += 1
        if isinstance(made, Copy):
            copies.append(made)
        else:
            tally.skipped[made.problem or "?"] += 1

    async def _send(self, producer: Any, copies: list[Copy]) -> None:
        count = self._target_partitions
        records: list[Record] = [(c.key, c.value, c.headers, c.timestamp_ms) for c in copies]
        parts = [
            target_partition(c, self.target, count, partition_for(_source_key(c), count))
            for c in copies
        ]
        sent = await queue(producer, self.target, records, parts)
        # `queue` keeps each partition's records in order: map them back to their copies.
        by_partition: dict[int, list[Copy]] = {}
        for c, p in zip(copies, parts, strict=True):
            by_partition.setdefault(p, []).append(c)
        for s in sent:
            group = by_partition[s.partition]
            self.pending.append((s, group[: len(s.records)]))
            del group[: len(s.records)]
        self.unacknowledged += len(copies)
        while len(self.pending) > MAX_BATCHES_IN_FLIGHT:
            await self._ack_oldest()

    async def _ack_oldest(self) -> None:
        sent, copies = self.pending[0]
        await sent.future  # a refusal or a Kafka error ends the run (exit 1)
        self.pending.popleft()
        self.unacknowledged -= len(copies)
        for c in copies:
            self.tally.redriven[c.error_class] += 1

    async def _flush(self) -> None:
        while self.pending:
            await self._ack_oldest()
            self._progress()

    async def _close(self, clients: Sequence[Any]) -> None:
        """Stop the clients. After a signal this gets the last `_CLOSE_RESERVE_S` of the stop's
        bound; a producer with copies still unacknowledged (a stop that gave up) is closed at
        once: waiting for them is what the stop gave up on."""
        budget = _CLOSE_RESERVE_S if self.interrupted else 10.0
        deadline = time.monotonic() + budget
        for i, client in reversed(list(enumerate(clients))):
            if client is None:
                continue
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())) as scope:
                if self.unacknowledged and i == 1:
                    await close_now(client)
                else:
                    await client.stop()
            if scope.cancelled_caught:
                # Whatever is left (sockets, a request in flight) goes with the process.
                log.warning("client not closed in time", extra={"client": type(client).__name__})

    # ------------------------------------------------------------------------ reporting

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.progress_s:
            return
        self._last_progress = now
        tally = self.tally
        read = sum(tally.read.values())
        print(
            f"redrive progress: read {read} of {self.total} dead letters, "
            f"selected {sum(tally.selected.values())}, "
            f"redriven {sum(tally.redriven.values())} (acknowledged), "
            f"{read / max(now - self.started, 1e-9):,.0f} dead letters/s",
            file=self.out,
            flush=True,
        )

    def _finish(self, code: int) -> int:
        note = ""
        if self.dry_run:
            selected = sum(self.tally.selected.values()) - sum(self.tally.skipped.values())
            note = f"; dry run: {selected} would be redriven, nothing written"
        if self.interrupted:
            left = ", ".join(
                f"partition {tp.partition} offsets {self.next_offset[tp]}-{end - 1}"
                for tp, end in sorted(self.remaining.items())
            )
            note += "; interrupted" + (f", not read: {left}" if left else "")
        if code == EXIT_UNACKNOWLEDGED:
            note += (
                f"; {self.unacknowledged} copies not acknowledged within "
                f"{self.settings.shutdown_timeout_s}s (they may or may not have been written)"
            )
        print(
            self.tally.line(self.source, self.target, time.monotonic() - self.started, note),
            file=self.out,
            flush=True,
        )
        return code


def _source_key(copy: Copy) -> bytes:
    s = copy.source
    return f"{s.topic}:{s.partition}:{s.offset}".encode()


_KNOWN: Final = (KafkaError, AuthenticationFailed, BrokerUnreachable, TopicProblem)


def run_redrive(
    settings: Settings,
    selection: Selection,
    target: str,
    *,
    progress_s: float = 5.0,
    dry_run: bool = False,
) -> int:
    """The exit code: 0 done (every selected copy acknowledged), 1 a Kafka error or no broker
    within --startup-timeout-s, 2 a setting (a missing topic, a bad --partition: ConfigError
    is raised for the caller to report), 3 stopped with copies not acknowledged."""
    redrive = Redrive(settings, selection, target, progress_s=progress_s, dry_run=dry_run)
    try:
        return anyio.run(redrive.main, backend="asyncio", backend_options={"use_uvloop": True})
    except (*_KNOWN, ConfigError, BaseExceptionGroup) as exc:
        # Task groups wrap what their tasks raise; anything else is a bug and keeps its
        # traceback.
        if isinstance(exc, BaseExceptionGroup):
            known, rest = exc.split((*_KNOWN, ConfigError))
            if rest is not None or known is None:
                raise
            while isinstance(known, BaseExceptionGroup):
                known = known.exceptions[0]
            exc = known
        if isinstance(exc, ConfigError):
            raise exc from None
        print(f"error: {exc}", file=sys.stderr)
        code = 2 if isinstance(exc, (AuthenticationFailed, TopicProblem)) else 1
        if redrive.total:  # what was done before the error
            redrive._finish(code)
        return code
