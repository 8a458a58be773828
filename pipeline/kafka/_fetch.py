"""Records aiokafka cannot parse become dead letters, and consumption goes on.

aiokafka 0.14 decodes every header key as strict UTF-8 inside its fetcher (the record format
and librdkafka allow any bytes). One such record makes `getmany` raise `UnicodeDecodeError`;
worse, the records of that fetch already parsed before it are skipped by the next `getmany`
(the partition's position moves past them) while the bad record is fetched again forever.

The hook is the narrowest that can see the failing bytes: `install()` swaps two names in
`aiokafka.consumer.fetcher` for subclasses (`MemoryRecords` keeps the bytes of the batch being
read, `PartitionRecords` catches a failure while its records are iterated). The fast path is
aiokafka's own, unchanged (a C record parser, delegated to with `yield from`); only when a batch
fails is it re-read here, leniently: its parseable records come out as usual, a record whose
header keys are not UTF-8 comes out as an `Unreadable` record (keys decoded with U+FFFD, value
and header values intact), and a batch past repair as one `Unreadable` naming the offsets it
spans. A batch that fails its CRC is left to aiokafka (it raises, and a refetch may mend it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import aiokafka.consumer.fetcher as aiokafka_fetcher
from aiokafka import codec
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
    """A fetched record: `ConsumerRecord`'s fields, in its order, as a named tuple (made in C,
    without a Python-level `__init__`, its fields read in C), its headers the parser's own list
    (not copied: a batch builder takes them as they are)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    headers: list[tuple[str, bytes]]


_new = tuple.__new__


class _PartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    next_fetch_offset: int
    _key_deserializer: Any
    _value_deserializer: Any

    def _consumer_record(self, tp: TopicPartition, record: Any) -> Any:
        if self._key_deserializer is not None or self._value_deserializer is not None:
            return super()._consumer_record(tp, record)
        key, value = record.key, record.value
        return _new(
            Fetched,
            (
                tp.topic,
                tp.partition,
                record.offset,
                record.timestamp,
                record.timestamp_type,
                key,
                value,
                record.checksum,
                -1 if key is None else len(key),
                -1 if value is None else len(value),
                record.headers,
            ),
        )

    def _unpack_records(self) -> Iterator[ConsumerRecord[Any, Any]]:
        while True:
            try:
                yield from super()._unpack_records()
                return
            except Exception:
                raw = getattr(self._records, "last", None)
                if raw is None or not self._fails_in_records(raw):
                    raise
            yield from self._salvage(raw)

    def _fails_in_records(self, raw: memoryview) -> bool:
        """Whether the failure came from parsing the records of the batch `raw`, a data batch
        whose CRC is good (not from the CRC check, nor a control batch)."""
        if len(raw) < _HEADER.size or raw[16] < 2:
            return False
        batch = DefaultRecordBatch(raw)
        return not batch.is_control_batch and batch.validate_crc()

    def _salvage(self, raw: memoryview) -> Iterator[ConsumerRecord[Any, Any]]:
        tp = self._tp
        batch = DefaultRecordBatch(raw)
        try:
            for offset, stamp, kind, key, value, headers in _lenient_records(raw):
                if offset < self.next_fetch_offset:
                    continue
                try:
                    named = [(name.decode("utf-8"), data) for name, data in headers]
                    record = self._consumer_record(
                        tp, DefaultRecord(offset, stamp, kind, key, value, named)
                    )
                except UnicodeDecodeError:
                    bad = next(n for n, _ in headers if not _is_utf8(n))
                    record = Unreadable(
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
                self.next_fetch_offset = offset + 1
                yield record
        except Exception as exc:
            last = batch.next_offset - 1
            if self.next_fetch_offset > last:  # past its last record: nothing is lost
                self.next_fetch_offset = batch.next_offset
                return
            yield Unreadable(
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
                    f"{self.next_fetch_offset} to {last}, cannot be parsed: {exc!r}"
                ),
            )
        self.next_fetch_offset = batch.next_offset


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def install() -> None:
    """Make every aiokafka consumer of this process dead-letter what it cannot parse
    (idempotent; checked against the fetcher it adapts, so an aiokafka upgrade that moves
    these names fails at start, not on the first bad record)."""
    fetcher: Any = aiokafka_fetcher
    if fetcher.PartitionRecords is _PartitionRecords:
        return
    if fetcher.PartitionRecords is not _PartitionRecords.__base__ or not hasattr(
        fetcher.PartitionRecords, "_unpack_records"
    ):
        raise RuntimeError("aiokafka's fetcher changed: pipeline/kafka/_fetch.py needs a look")
    fetcher.MemoryRecords = _Records
    fetcher.PartitionRecords = _PartitionRecords


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
