"""aiokafka's fetcher, a record batch at a time; records it cannot parse become dead letters.

Two names in `aiokafka.consumer.fetcher` are swapped by `install()` for subclasses, for every
consumer of the process:

* Speed. aiokafka hands out a partition's fetched records one by one through two generators
  and builds a `ConsumerRecord` dataclass in Python per record, about as much work as parsing
  the record in C. `_PartitionRecords.take` (called by `_FetchResult.getall`) parses a whole
  record batch in C and makes its records `Fetched` named tuples (`ConsumerRecord`'s fields,
  the headers the parser's own list) through C iterators, then hands out slices of the list.
  The batches walked, the records skipped and the positions are aiokafka's.
* Unparseable records. aiokafka 0.14 decodes every header key as strict UTF-8 (the record
  format and librdkafka allow any bytes); one such record would make `getmany` raise
  `UnicodeDecodeError` and be fetched again forever. `MemoryRecords` keeps the bytes of the
  batch being read, and a batch whose records fail to parse is re-read here, leniently: its
  parseable records come out as usual, a record whose header keys are not UTF-8 comes out as
  an `Unreadable` record (keys decoded with U+FFFD, value and header values intact), and a
  batch past repair as one `Unreadable` naming the offsets it spans. A batch that fails its CRC
  raises, as in aiokafka (a refetch may mend it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, attrgetter
from typing import Any, Final, NamedTuple, cast

import aiokafka.consumer.fetcher as aiokafka_fetcher
from aiokafka import codec
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecord, DefaultRecordBatch
from aiokafka.record.memory_records import _MemoryRecordsPy
from aiokafka.record.util import decode_varint
from aiokafka.structs import ConsumerRecord, TopicPartition

from ..core import DeadLetter, InputRecord, dead_letter
from ..errors import UnreadableRecord


@dataclass
class Unreadable(ConsumerRecord[bytes, bytes]):  # type: ignore[misc]  # aiokafka is untyped
    """What could be recovered of a record aiokafka could not parse, and why."""

    error: str = ""


# Record batch v2 header: base offset, length, leader epoch, magic, crc, attributes, last offset
# delta, first and max timestamp, producer id and epoch, base sequence, record count.
_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
_CODECS: Final = {
    1: codec.gzip_decode,
    2: lambda data: codec.snappy_decode(bytes(data)),
    3: lambda data: codec.lz4_decode(bytes(data)),
    4: lambda data: codec.zstd_decode(bytes(data)),
}
_LOG_APPEND_TIME: Final = 0x08
#: aiokafka's isolation level code for read_committed.
READ_COMMITTED: Final = aiokafka_fetcher.READ_COMMITTED


def _lenient_records(
    raw: memoryview,
) -> Iterator[tuple[int, int, int, bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]]:
    """(offset, timestamp, timestamp type, key, value, raw headers) of each record of one v2
    batch, header keys left as bytes; raises on bytes that are not a record."""
    (base, _, _, _, _, attributes, _, first_ts, max_ts, _, _, _, count) = _HEADER.unpack_from(raw)
    data: Any = raw[_HEADER.size :]
    if attributes & 0x07:
        data = _CODECS[attributes & 0x07](data)
    append_time = attributes & _LOG_APPEND_TIME
    pos = 0
    for _ in range(count):
        length, pos = decode_varint(data, pos)
        end = pos + length
        _, pos = decode_varint(data, pos)  # attributes: unused
        ts_delta, pos = decode_varint(data, pos)
        offset_delta, pos = decode_varint(data, pos)
        fields: list[bytes | None] = []
        for _ in range(2):  # key, value
            size, pos = decode_varint(data, pos)
            fields.append(bytes(data[pos : pos + size]) if size >= 0 else None)
            pos += max(size, 0)
        n, pos = decode_varint(data, pos)
        headers: list[tuple[bytes, bytes | None]] = []
        for _ in range(n):
            size, pos = decode_varint(data, pos)
            name = bytes(data[pos : pos + size])
            pos += size
            size, pos = decode_varint(data, pos)
            headers.append((name, bytes(data[pos : pos + size]) if size >= 0 else None))
            pos += max(size, 0)
        if pos != end or size < -1 or n < 0:
            raise ValueError(f"record at offset {base + offset_delta} is malformed")
        stamp = max_ts if append_time else first_ts + ts_delta
        yield base + offset_delta, stamp, 1 if append_time else 0, fields[0], fields[1], headers


class _Records(_MemoryRecordsPy):  # type: ignore[misc]  # final only for typing
    """aiokafka's pure-Python batch splitter (the batches are still parsed in C), keeping the
    bytes of the batch handed out last."""

    def __init__(self, data: bytes) -> None:
        self.last: memoryview | None = None
        super().__init__(data)

    def next_batch(self, *args: Any) -> Any:
        self.last = self._next_slice
        return super().next_batch(*args)


class Fetched(NamedTuple):
    """A fetched record: `ConsumerRecord`'s fields as a named tuple, made and read in C (no
    Python-level `__init__` per record), its headers the parser's own list (a batch builder
    takes them as they are, uncopied)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    checksum: int | None
    headers: list[tuple[str, bytes]]

    @property
    def serialized_key_size(self) -> int:
        return -1 if self.key is None else len(self.key)

    @property
    def serialized_value_size(self) -> int:
        return -1 if self.value is None else len(self.value)


#: What a fetched record takes from the parser's record, in `Fetched`'s order.
_FIELDS: Final = attrgetter(
    "offset", "timestamp", "timestamp_type", "key", "value", "checksum", "headers"
)
_new = tuple.__new__


class _PartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one fetched partition, handed out a batch at a time (`take`): each
    record batch is parsed whole (in C) into `Fetched` records, where aiokafka runs a generator
    and builds a `ConsumerRecord` in Python per record."""

    next_fetch_offset: int

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._batches = self._parsed_batches()
        #: The records of the batch being handed out, the next one's index, and the position
        #: once all of them are handed out (None: not yet parsed).
        self._held: list[Any] = []
        self._next = 0
        self._end: int | None = None

    def take(self, max_records: int | None) -> list[Any]:
        """Up to `max_records` (None: all) of the next records; fewer only at the end."""
        out: list[Any] = []
        room = -1 if max_records is None else max_records
        while room:
            held, first = self._held, self._next
            if first < len(held):
                part = held[first:] if room < 0 else held[first : first + room]
                out += part
                self._next = first + len(part)
                room -= len(part) if room > 0 else 0
                self.next_fetch_offset = part[-1].offset + 1
                continue
            if self._end is not None:
                self.next_fetch_offset = self._end
                self._end = None
            parsed = next(self._batches, None)
            if parsed is None:
                break
            self._held, self._end = parsed
            self._next = 0
        if self._next >= len(self._held) and self._end is not None:
            self.next_fetch_offset = self._end
            self._end = None
        return out

    def __next__(self) -> Any:
        records = self.take(1)
        if not records:
            raise StopIteration
        return records[0]

    def _parsed_batches(self) -> Iterator[tuple[list[Any], int]]:
        """(the records past the position, the position after them) of each data batch, as
        aiokafka's `_unpack_records` walks them: CRCs checked, aborted transactions and control
        batches skipped, a batch whose records fail to parse salvaged (`_salvage`)."""
        tp, records = self._tp, self._records
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {tp}")
            if self._isolation_level == READ_COMMITTED and batch.producer_id is not None:
                self._consume_aborted_up_to(batch.base_offset)
                if batch.is_control_batch and self._contains_abort_marker(batch):
                    self._aborted_producers.discard(batch.producer_id)
                if batch.is_transactional and batch.producer_id in self._aborted_producers:
                    yield [], batch.next_offset
                    continue
            if batch.is_control_batch:
                yield [], batch.next_offset
                continue
            try:
                parsed = list(batch)
            except Exception:
                raw = records.last
                if raw is None or not self._fails_in_records(raw):
                    raise
                yield self._salvage(raw), batch.next_offset
                continue
            if parsed and parsed[0].offset < self.next_fetch_offset:
                position = self.next_fetch_offset
                parsed = [r for r in parsed if r.offset >= position]
            yield self._fetched(tp, parsed), batch.next_offset

    def _fetched(self, tp: TopicPartition, parsed: list[Any]) -> list[Any]:
        if self._key_deserializer is not None or self._value_deserializer is not None:
            return [self._consumer_record(tp, r) for r in parsed]  # aiokafka's own records
        n = len(parsed)
        place = (tp.topic, tp.partition)
        return list(map(_new, repeat(Fetched, n), map(add, repeat(place, n), map(_FIELDS, parsed))))

    def _fails_in_records(self, raw: memoryview) -> bool:
        """Whether the failure came from parsing the records of the batch `raw`, a data batch
        whose CRC is good (not from the CRC check, nor a control batch)."""
        if len(raw) < _HEADER.size or raw[16] < 2:
            return False
        batch = DefaultRecordBatch(raw)
        return not batch.is_control_batch and batch.validate_crc()

    def _salvage(self, raw: memoryview) -> list[Any]:
        """The records of batch `raw` past the position, read leniently."""
        tp = self._tp
        batch = DefaultRecordBatch(raw)
        position = self.next_fetch_offset
        out: list[Any] = []
        try:
            for offset, stamp, kind, key, value, headers in _lenient_records(raw):
                if offset < position:
                    continue
                try:
                    named = [(name.decode("utf-8"), data) for name, data in headers]
                    record = DefaultRecord(offset, stamp, kind, key, value, named)
                    out += self._fetched(tp, [record])
                except UnicodeDecodeError:
                    bad = next(n for n, _ in headers if not _is_utf8(n))
                    out.append(
                        Unreadable(
                            tp.topic,
                            tp.partition,
                            offset,
                            stamp,
                            kind,
                            key,
                            value,
                            None,
                            len(key) if key is not None else -1,
                            len(value) if value is not None else -1,
                            [(n.decode("utf-8", "replace"), d) for n, d in headers],
                            error=f"header key {bad[:100]!r} is not UTF-8",
                        )
                    )
                position = offset + 1
        except Exception as exc:
            last = batch.next_offset - 1
            if position > last:  # past its last record: nothing is lost
                return out
            out.append(
                Unreadable(
                    tp.topic,
                    tp.partition,
                    last,
                    batch.max_timestamp,
                    batch.timestamp_type,
                    None,
                    None,
                    None,
                    -1,
                    -1,
                    [],
                    error=(
                        f"record batch of {tp.topic} partition {tp.partition}, offsets "
                        f"{position} to {last}, cannot be parsed: {exc!r}"
                    ),
                )
            )
        return out


class _FetchResult(aiokafka_fetcher.FetchResult):  # type: ignore[misc]
    """aiokafka's fetch result, taking its records a batch at a time (`_PartitionRecords.take`)
    where aiokafka loops over them one by one."""

    _partition_records: _PartitionRecords | None

    def getall(self, max_records: int | None = None) -> list[Any]:
        tp = self._topic_partition
        records = self._partition_records
        if not self.check_assignment(tp) or records is None:
            return []
        if type(records) is not _PartitionRecords:
            return cast(list[Any], super().getall(max_records))
        taken = records.take(max_records)
        self._update_position()
        if max_records is None or len(taken) < max_records:
            self._partition_records = None  # all handed out
        return taken


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def install() -> None:
    """Make every aiokafka consumer of this process fetch `Fetched` records a batch at a time,
    and dead-letter what it cannot parse (idempotent; checked against the fetcher it adapts,
    so an aiokafka upgrade that moves these names fails at start, not on the first record)."""
    fetcher: Any = aiokafka_fetcher
    if fetcher.PartitionRecords is _PartitionRecords:
        return
    if (
        fetcher.PartitionRecords is not _PartitionRecords.__base__
        or fetcher.FetchResult is not _FetchResult.__base__
        or not all(
            hasattr(fetcher.PartitionRecords, name)
            for name in ("_consume_aborted_up_to", "_contains_abort_marker", "_consumer_record")
        )
        or not all(
            hasattr(fetcher.FetchResult, name) for name in ("check_assignment", "_update_position")
        )
    ):
        raise RuntimeError("aiokafka's fetcher changed: pipeline/kafka/_fetch.py needs a look")
    fetcher.MemoryRecords = _Records
    fetcher.PartitionRecords = _PartitionRecords
    fetcher.FetchResult = _FetchResult


def input_records(
    batches: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]], dead_letter_max: int
) -> tuple[list[InputRecord], list[DeadLetter]]:
    """A `getmany` result as the core's input, and the dead letters of its unreadable records
    (their offsets stay in `batches`, so they are committed with the rest)."""
    records = [
        InputRecord(m.topic, m.partition, m.offset, m.timestamp, m.headers, m.value or b"")
        for messages in batches.values()
        for m in messages
        if type(m) is not Unreadable
    ]
    if len(records) == sum(map(len, batches.values())):
        return records, []
    dead = [
        dead_letter(
            InputRecord(m.topic, m.partition, m.offset, m.timestamp, m.headers, m.value or b""),
            UnreadableRecord(m.error),
            dead_letter_max,
        )
        for messages in batches.values()
        for m in messages
        if type(m) is Unreadable
    ]
    return records, dead
