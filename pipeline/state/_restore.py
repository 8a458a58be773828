"""Window p rebuilt from output partition p (its changelog) before p's first batch.

The read starts at the later of: the offset of (newest record time in p − ttl), and end − a
bound derived from the window's capacity; never from the wall clock, so input stamped long ago
(a backlog, a replay) still finds the events it caused. Keys and headers only are looked at,
unless state records are written: then each event's value is decoded too (its times).

With state records, the state topic is the lifecycle's changelog for what the output cannot
say: which time-outs fired. After the window is rebuilt, state partition p is read from the
earliest deadline among its messages still waiting for a final (a time-out's record is stamped
with its deadline) to its end, bounded like the output's read; every waiting message whose
record there says ``"timed_out":true`` is marked timed out without a record, so a time-out
fired by the idle rule (wall clock), or after the last snapshot, does not fire again. One
window over every output partition (topology `single`) reads every state partition back once,
after the last output partition: a message's state record and its events may lie in partitions
of different numbers there (its output topic may grow while it runs, its state topic later).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from ..config import Settings, state_topic
from ..core import Lifecycle
from ..errors import RestoreStalled, SettingProblem
from ._identities import Identities
from ._window import Window

log = logging.getLogger("pipeline.kafka")

#: Output records per message the bound allows for: a submit result and a final status.
RECORDS_PER_MESSAGE: Final = 2
#: State records per message the bound of the state topic's read allows for: one per event
#: and one for its time-out.
STATE_RECORDS_PER_MESSAGE: Final = RECORDS_PER_MESSAGE + 1
#: What a state record of a timed-out message holds (msgspec writes no spaces).
_TIMED_OUT: Final = b'"timed_out":true'
#: Records looked at from the end of a partition to find its newest record time.
TAIL: Final = 64
#: Seconds a restore's read may get no record further before it counts as stalled.
STALL_S: Final = 20.0


class Restored(NamedTuple):
    partition: int
    records: int
    seconds: float
    start: int
    end: int
    #: Whether a snapshot seeded the window (then only records from `start` on were read).
    snapshot: bool = False
    #: State records read back (the time-outs that fired before), and the waiting messages
    #: they marked timed out.
    state_records: int = 0
    fired_before: int = 0


def bound(capacity: int) -> int:
    """The most output records a restore of a window of `capacity` messages reads."""
    return capacity * RECORDS_PER_MESSAGE


class Restorer:
    """Reads output partitions into windows, one at a time, on a consumer of its own (no group)."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        start: Callable[[AIOKafkaConsumer], Awaitable[None]],
    ) -> None:
        """``consumer``: a consumer without a group, not started; ``start`` starts it (the Kafka
        layer's bounded retry)."""
        self.settings = settings
        self.consumer = consumer
        self._start = start
        #: Every restore so far (newest last), for the log.
        self.done: list[Restored] = []
        #: Called with (seconds, records: output and state records read) after each restore
        #: (the metrics).
        self.on_restore: Callable[[float, int], None] | None = None

    async def start(self) -> None:
        await self._start(self.consumer)

    async def offsets(self, partition: int) -> tuple[int, int]:
        """Output partition p's log start and end offsets now."""
        consumer = self.consumer
        tp = TopicPartition(self.settings.output_topic, partition)
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        return begin, end

    async def resume(
        self,
        partition: int,
        window: Window,
        start: int,
        end: int,
        lifecycle: Lifecycle | None = None,
    ) -> Restored:
        """Window p seeded from a snapshot: read only the output records in [start, end).
        ``lifecycle`` (over `window`): the messages' lifecycle data and time-outs follow."""
        started = time.monotonic()
        tp = TopicPartition(self.settings.output_topic, partition)
        records = 0
        if end > start:
            with self._assigned(tp):
                records = await self._load(tp, start, end, window, lifecycle)
        states, fired = await self._fired_before(partition, window.max_messages, lifecycle)
        return self._done(
            Restored(
                partition, records, time.monotonic() - started, start, end, True, states, fired
            ),
            window,
        )

    async def restore(
        self,
        partition: int,
        window: Window,
        capacity: int,
        lifecycle: Lifecycle | None = None,
        *,
        read_back: Sequence[int] | None = None,
    ) -> Restored:
        """Window p rebuilt from output partition p (bounded); ``lifecycle`` as in `resume`.
        ``read_back``: the state partitions read back after it (default: p; none, or all of
        them after the last output partition, for one window over every partition), each
        bounded by its share of the window's capacity."""
        started = time.monotonic()
        consumer = self.consumer
        tp = TopicPartition(self.settings.output_topic, partition)
        begin, end = await self.offsets(partition)
        start = end
        records = 0
        if end > begin:
            with self._assigned(tp):
                newest = await self._newest_time(tp, max(begin, end - TAIL), end)
                start = max(begin, end - bound(capacity))
                if newest is not None:
                    cutoff = newest - self.settings.window_ttl_s * 1000
                    found = await consumer.offsets_for_times({tp: max(0, cutoff)})
                    hit = found.get(tp)
                    start = max(start, hit.offset if hit is not None else end)
                records = await self._load(tp, start, end, window, lifecycle)
        states = fired = 0
        if read_back is None:
            states, fired = await self._fired_before(partition, capacity, lifecycle)
        elif read_back:
            share = -(-window.max_messages // len(read_back))
            for p in read_back:
                read, marked = await self._fired_before(p, share, lifecycle)
                states, fired = states + read, fired + marked
        return self._done(
            Restored(
                partition, records, time.monotonic() - started, start, end, False, states, fired
            ),
            window,
        )

    async def _fired_before(
        self, partition: int, capacity: int, lifecycle: Lifecycle | None
    ) -> tuple[int, int]:
        """Mark the time-outs that fired before, from state partition `partition` (module
        docstring), reading at most `capacity` messages' worth of state records:
        (state records read, messages marked). A state topic that cannot be read otherwise
        than for want of an ACL is logged: its time-outs may then fire again."""
        topic = state_topic(self.settings)
        if lifecycle is None or lifecycle.timeouts is None or topic is None:
            return 0, 0
        earliest = lifecycle.timeouts.earliest()
        if earliest is None:
            return 0, 0
        tp = TopicPartition(topic, partition)
        consumer = self.consumer
        read = marked = 0
        try:
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            # Nothing stamped at or after the earliest deadline: no time-out of theirs fired.
            hit = (await consumer.offsets_for_times({tp: max(0, earliest)})).get(tp)
            if hit is None or hit.offset >= end:
                return 0, 0
            start = max(begin, hit.offset, end - capacity * STATE_RECORDS_PER_MESSAGE)
            with self._assigned(tp):
                async for messages in self._read(tp, start, end, 50_000):
                    read += len(messages)
                    fired = [m for m in messages if m.key and m.value and _TIMED_OUT in m.value]
                    marked += lifecycle.fired_before(
                        [m.key for m in fired], [m.timestamp for m in fired]
                    )
        except TopicAuthorizationFailedError:
            raise SettingProblem(
                f"not authorized to Read state (--state-topic) topic {topic!r}: a restore "
                "reads back which time-outs fired"
            ) from None
        except KafkaError as exc:
            log.warning(
                "state topic not read back: time-outs that fired before may fire again",
                extra={"topic": topic, "partition": partition, "error": repr(exc)},
            )
        return read, marked

    @contextlib.contextmanager
    def _assigned(self, tp: TopicPartition) -> Iterator[None]:
        """`tp` assigned while it is read, and nothing after. An assigned partition at its end
        keeps a fetch waiting on the broker (`fetch.max.wait.ms`), and the offset requests of
        the next restore or snapshot queue behind it: about a second per partition."""
        self.consumer.assign([tp])
        try:
            yield
        finally:
            self.consumer.assign([])

    def _done(self, done: Restored, window: Window) -> Restored:
        self.done.append(done)
        if self.on_restore is not None:
            self.on_restore(done.seconds, done.records + done.state_records)
        log.info(
            "window restored",
            extra={
                "partition": done.partition,
                "records": done.records,
                "messages": len(window),
                "from_offset": done.start,
                "end_offset": done.end,
                "snapshot": done.snapshot,
                "state_records": done.state_records,
                "fired_before": done.fired_before,
                "seconds": round(done.seconds, 3),
            },
        )
        return done

    async def _newest_time(self, tp: TopicPartition, start: int, end: int) -> int | None:
        newest = None
        async for messages in self._read(tp, start, end):
            for m in messages:
                if newest is None or m.timestamp > newest:
                    newest = m.timestamp
        return newest

    async def _load(
        self,
        tp: TopicPartition,
        start: int,
        end: int,
        window: Window,
        lifecycle: Lifecycle | None,
    ) -> int:
        count = 0
        async for messages in self._read(tp, start, end, 50_000):
            ids = Identities((m.key, m.headers, m.timestamp) for m in messages)
            ids.load(window)
            if lifecycle is not None:
                # The messages' lifecycle data, from the events themselves (values decoded).
                values = [messages[i].value for i in ids.indexes]
                lifecycle.replay(values, ids.keys, ids.stamps)
            count += len(messages)
        if lifecycle is not None:
            # What was due by the restored clock timed out before (its record is written).
            lifecycle.expire(emit=False)
        return count

    async def _read(
        self, tp: TopicPartition, start: int, end: int, max_records: int | None = None
    ) -> AsyncIterator[list[Any]]:
        """The records of `tp` in [start, end), fetch by fetch. A read that gets nowhere for
        `STALL_S` raises `RestoreStalled` (the stage retries the step, then stops): a restore
        waits for the broker, and a wait that can never end must not hold the stage for ever."""
        consumer = self.consumer
        consumer.seek(tp, start)
        position, moved = start, time.monotonic()
        while position < end:
            batches = await consumer.getmany(tp, timeout_ms=200, max_records=max_records)
            for messages in batches.values():
                yield [m for m in messages if m.offset < end]
            now = await consumer.position(tp)
            if now > position:
                position, moved = now, time.monotonic()
            elif time.monotonic() - moved > STALL_S:
                raise RestoreStalled(
                    f"restore of {tp.topic}[{tp.partition}] got no record past offset "
                    f"{position} (of {start}..{end}) for {STALL_S} s"
                )
