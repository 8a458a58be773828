"""Writes records with the producer's batch API, partitioned as Kafka's Java client does, and turns
what the broker refuses into dead letters.

The normal path costs nothing per record beyond `append` and a min and max of the batch's
timestamps (an event stamped outside the topic's window becomes an `InvalidTimestamp` dead
letter before it is sent): one future per partition batch, batches no larger than the topic
takes. When the broker still refuses a batch (`MessageSizeTooLarge`, `RecordTooLarge`,
`InvalidTimestamp`: a limit changed, a clock disagrees, an estimate fell short), the rare path
runs: the idempotent producer is replaced (its sequence numbers for that partition are spoilt:
every later batch would fail with `OutOfOrderSequenceNumber`), each record of the failed batches
is checked against the limits, the offenders become dead letters (value cut to fit, class
`EventTooLarge` or `InvalidTimestamp`, the source named), and everything is sent again, one
record at a time if it must. The caller commits only once `flush` returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec
from aiokafka.errors import (
    InvalidTimestampError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from ..core import CoreStats, DeadLetter, OutputRecord, record_size
from ..errors import EventTooLarge, InvalidTimestamp, TopicProblem
from ._limits import TopicLimits
from ._partitioner import partition_for, partitions_for

log = logging.getLogger("pipeline.kafka")

#: Size of one producer batch; large batches amortise the per-request cost.
PRODUCER_BATCH_BYTES: Final = 1024 * 1024

Record = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]], int]
#: What the broker answers for a record it will never take.
REFUSALS: Final = (MessageSizeTooLargeError, RecordTooLargeError, InvalidTimestampError)
_SOURCE_HEADERS: Final = ("source.topic", "source.partition", "source.offset")
#: The headers of an event that name its counter's labels.
_LABELS: Final = ("provider", "status")


class Sent(NamedTuple):
    """One queued batch: its future and what it holds."""

    future: asyncio.Future[Any]
    topic: str
    partition: int
    records: list[Record]


class _EventSource(msgspec.Struct):
    source: dict[str, Any]


_SOURCE = msgspec.json.Decoder(_EventSource)


class Sink:
    """The producer of output and dead-letter records; replaced when a refusal spoils it."""

    def __init__(
        self,
        make_producer: Callable[[int], Any],
        dead_letter_topic: str,
        stats: CoreStats | None = None,
        output_topic: str | None = None,
    ) -> None:
        """``make_producer(batch_bytes)``: a new, unstarted idempotent producer. The dead
        letters this sink makes count in ``stats``; those of events refused by
        ``output_topic`` also in its ``events_refused``."""
        self._make = make_producer
        self.dead_letter_topic = dead_letter_topic
        self.stats = stats if stats is not None else CoreStats()
        self.output_topic = output_topic
        self.limits: dict[str, TopicLimits] = {}
        self.producer: Any = None  # made by `start`, once the limits are known
        self._start: Callable[[Any], Awaitable[None]] | None = None

    def _batch_bytes(self) -> int:
        # The builder's size bounds the whole batch, its header included.
        return min([PRODUCER_BATCH_BYTES, *(lim.max_message_bytes for lim in self.limits.values())])

    async def start(
        self, limits: Mapping[str, TopicLimits], start: Callable[[Any], Awaitable[None]]
    ) -> None:
        """Start the producer with batches no larger than any of `limits` takes."""
        self.limits = dict(limits)
        self._start = start
        self.producer = self._make(self._batch_bytes())
        await start(self.producer)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def partition_count(self, topic: str) -> int:
        """The topic's partition count in the producer's current metadata (refreshed every few
        seconds), so a topic that grows is written by its new count, not the one seen first."""
        parts = self.producer.client.cluster.partitions_for_topic(topic)
        if not parts:
            parts = await self.producer.partitions_for(topic)
        return len(parts)

    async def write(
        self,
        topic: str,
        outputs: Sequence[OutputRecord],
        dead: Sequence[DeadLetter],
        states: Sequence[OutputRecord] = (),
        state_topic: str | None = None,
    ) -> list[Sent]:
        """Queue a batch's events (murmur2-partitioned by key), its state records (to
        `state_topic`, murmur2-partitioned by the same key) and dead letters (spread by their
        source key); `flush` what this returns before committing.

        An event stamped outside the window of timestamps `topic` takes (a producer's clock
        far ahead, a topic's `message.timestamp.*.max.ms`) becomes an `InvalidTimestamp` dead
        letter here, before it is sent: sent, the broker would refuse its whole batch and spoil
        the producer. A dead letter or state record stamped outside its topic's window is
        stamped now."""
        sent: list[Sent] = []
        now = int(time.time() * 1000)
        records: list[Record] = [(d.key, d.value, d.headers, d.timestamp_ms) for d in dead]
        if outputs:
            outputs, late = self._in_window(topic, outputs, now)
            records += [
                self._refused(topic, o, InvalidTimestamp.__name__, False, now) for o in late
            ]
        if outputs:
            count = await self.partition_count(topic)
            sent += await self.send(topic, outputs, partitions_for([o.key for o in outputs], count))
        if states and state_topic is not None:
            # By its own count: the output's while both match (a state record lands in its
            # events' partition); after the output topic grew, until the state topic follows.
            count = await self.partition_count(state_topic)
            # Stamped as its event: one the topic would refuse is stamped now (its value keeps
            # the record time), as a refusal would spoil the producer.
            sent += await self.send(
                state_topic,
                self._stamped(state_topic, states, now),
                partitions_for([o.key for o in states], count),
            )
        if records:
            count = await self.partition_count(self.dead_letter_topic)
            # Spread by their source key, as the producer would (a keyless one: b"").
            parts = partitions_for([r[0] or b"" for r in records], count)
            stamped = self._stamped(self.dead_letter_topic, records, now)
            sent += await self.send(self.dead_letter_topic, stamped, parts)
        return sent

    def _in_window(
        self, topic: str, outputs: Sequence[OutputRecord], now: int
    ) -> tuple[Sequence[OutputRecord], list[OutputRecord]]:
        """(the outputs `topic` takes by timestamp, those it would refuse): one min and max
        per batch, in C; only a batch with a record out of the window is split."""
        lo, hi = self.limits.get(topic, TopicLimits()).stamp_window(now)
        stamps = [o[3] for o in outputs]
        if lo <= min(stamps) and max(stamps) <= hi:
            return outputs, []
        return [o for o in outputs if lo <= o[3] <= hi], [
            o for o in outputs if not lo <= o[3] <= hi
        ]

    def _stamped(self, topic: str, records: Sequence[Record], now: int) -> Sequence[Record]:
        """`records`, those stamped outside the window of timestamps `topic` takes stamped
        `now` (one min and max per batch, in C; only a batch with such a record is rebuilt)."""
        lo, hi = self.limits.get(topic, TopicLimits()).stamp_window(now)
        stamps = [r[3] for r in records]
        if lo <= min(stamps) and max(stamps) <= hi:
            return records
        return [r if lo <= r[3] <= hi else (r[0], r[1], r[2], now) for r in records]

    async def send(
        self, topic: str, records: Sequence[Record], partitions: Sequence[int]
    ) -> list[Sent]:
        """Queue `records` (key, value, headers, timestamp), one batch per partition and size."""
        return await queue(self.producer, topic, records, partitions)

    async def flush(self, sent: Sequence[Sent]) -> None:
        """Return once the broker holds every record of `sent`, or a dead letter for it."""
        # Each round dead-letters at least one record (or fails), after at most one round that
        # sends again what an earlier flush's refusal spoilt, so this bound is never met while
        # the broker and its reported limits agree about anything.
        rounds = 2 * sum(len(s.records) for s in sent) + 3
        for _ in range(rounds):
            results = await asyncio.gather(*(s.future for s in sent), return_exceptions=True)
            failed = [
                (s, r) for s, r in zip(sent, results, strict=True) if isinstance(r, BaseException)
            ]
            if not failed:
                return
            errors = [r for _, r in failed]
            # A refusal spoils the producer's sequence for its partition: what is queued behind
            # it there fails out of order, also a later batch in flight (its flush comes next).
            other = [e for e in errors if not isinstance(e, (*REFUSALS, OutOfOrderSequenceNumber))]
            for s, error in failed:
                if isinstance(error, TopicAuthorizationFailedError):
                    raise TopicProblem(f"not authorized to Write topic {s.topic!r}") from error
            if other:
                raise other[0]
            log.warning(
                "broker refused records; dead-lettering the offenders",
                extra={"batches": len(failed), "error": repr(errors[0])},
            )
            await self._renew()
            sent = await self._resend(failed)
        raise RuntimeError("the broker keeps refusing the dead letters of refused records")

    async def _renew(self) -> None:
        """A new producer (a new producer id, fresh sequence numbers)."""
        old, self.producer = self.producer, self._make(self._batch_bytes())
        await old.stop()
        assert self._start is not None
        await self._start(self.producer)

    async def _resend(self, failed: Sequence[tuple[Sent, BaseException]]) -> list[Sent]:
        """Send the records of `failed` again, the offenders as dead letters, each record in a
        batch of its own: a record the limits pass but the broker refused alone (a limit
        lowered since start, a clock apart) is an offender too."""
        now = int(time.time() * 1000)
        dead: list[Record] = []
        sent: list[Sent] = []
        for s, error in failed:
            limits = self.limits.get(s.topic, TopicLimits())
            lo, hi = limits.stamp_window(now)
            alone = len(s.records) == 1 and isinstance(error, REFUSALS)
            kept = []
            for record in s.records:
                key, value, headers, stamp = record
                late = isinstance(error, InvalidTimestampError) and alone
                if not late and (alone or record_size(key, value, headers) > limits.record_bytes):
                    dead.append(self._refused(s.topic, record, EventTooLarge.__name__, alone, now))
                elif late or not lo <= stamp <= hi:
                    dead.append(
                        self._refused(s.topic, record, InvalidTimestamp.__name__, alone, now)
                    )
                else:
                    kept.append(record)
            for record in kept:
                sent += await self.send(s.topic, [record], [s.partition])
        if dead:
            count = await self.partition_count(self.dead_letter_topic)
            for record in dead:
                part = partition_for(record[0], count) if record[0] is not None else 0
                sent += await self.send(self.dead_letter_topic, [record], [part])
        return sent

    def _refused(self, topic: str, record: Record, error: str, refused: bool, now: int) -> Record:
        """The dead letter of `record`, which `topic` refuses (`refused`: the broker refused
        it alone): keyed by its source, its value cut to fit the dead-letter topic (to half of
        that if the broker refused it alone), the reason and source added (a dead letter keeps
        its own), stamped now if the dead-letter topic would refuse its timestamp."""
        key, value, headers, stamp = record
        limits = self.limits.get(self.dead_letter_topic, TopicLimits())
        if topic == self.dead_letter_topic:
            # Already a dead letter: its reason and source are its last headers.
            own, reason = list(headers[:-5]), list(headers[-5:])
            if refused or record_size(None, b"", own) > limits.record_bytes // 2:
                own = [h for h in own if h[0] == "error.original_size"]
        else:
            own = list(headers)
            self._count(topic, own, error)
            source = _source_of(value)
            why = "too large for" if error == "EventTooLarge" else "stamped out of the window of"
            message = f"{why} topic {topic!r} ({len(value)} bytes, timestamp {stamp})"
            reason = [("error.class", error.encode()), ("error.message", message.encode()), *source]
            # As the core keys its dead letters: `topic:partition:offset` of the source.
            key = b":".join(v for _, v in source) if source else None
        room = limits.record_bytes - record_size(key, b"", [*own, *reason]) - 32
        if refused and topic == self.dead_letter_topic:
            room = min(room, len(value) // 2)
        if len(value) > room:
            if not any(k == "error.original_size" for k, _ in own):
                own.append(("error.original_size", str(len(value)).encode()))
            value = value[: max(0, room)]
        lo, hi = limits.stamp_window(now)
        late = refused and error == "InvalidTimestamp"
        return key, value, [*own, *reason], now if late or not lo <= stamp <= hi else stamp

    def _count(self, topic: str, headers: Sequence[tuple[str, bytes]], error: str) -> None:
        """Count a dead letter made of a record of `topic`: the core counted the event out."""
        self.stats.dead_letters[error] += 1
        if topic == self.output_topic:
            found = {k: v for k, v in headers if k in _LABELS and v is not None}
            provider, status = (found.get(k, b"").decode("utf-8", "replace") for k in _LABELS)
            self.stats.events_refused[provider, status] += 1


async def queue(
    producer: Any, topic: str, records: Sequence[Record], partitions: Sequence[int]
) -> list[Sent]:
    """Queue `records` on `producer`, one batch per partition and size; one future per batch."""
    by_partition: dict[int, list[Record]] = {}
    for record, p in zip(records, partitions, strict=True):
        group = by_partition.get(p)
        if group is None:
            by_partition[p] = [record]
        else:
            group.append(record)
    sent = []
    for partition, group in by_partition.items():
        batch = producer.create_batch()
        held: list[Record] = []
        for record in group:
            key, value, headers, stamp = record
            # A full batch refuses the record; an empty one takes any (the broker judges).
            while batch.append(key=key, value=value, timestamp=stamp, headers=headers) is None:
                future = await producer.send_batch(batch, topic, partition=partition)
                sent.append(Sent(future, topic, partition, held))
                batch, held = producer.create_batch(), []
            held.append(record)
        if held:
            future = await producer.send_batch(batch, topic, partition=partition)
            sent.append(Sent(future, topic, partition, held))
    return sent


def _source_of(event: bytes) -> list[tuple[str, bytes]]:
    """The source headers of an output record, from its event's `source` (rare path only)."""
    try:
        source = _SOURCE.decode(event).source
        return [(name, str(source[name.split(".")[1]]).encode()) for name in _SOURCE_HEADERS]
    except (msgspec.DecodeError, KeyError):
        return []
