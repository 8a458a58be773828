"""Fetched records a batch at a time: the same records and positions as aiokafka's own."""

from __future__ import annotations

from itertools import islice
from typing import Any

import aiokafka.consumer.fetcher as aiokafka_fetcher
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from pipeline.kafka import install

TP = TopicPartition("events", 3)


def batches(sizes: list[int], compression: int) -> bytes:
    """Record batches of `sizes` records, one after the other from offset 0."""
    data, base = b"", 0
    for size in sizes:
        builder = DefaultRecordBatchBuilder(2, compression, 0, -1, -1, -1, 1 << 20)
        for i in range(size):
            key = None if i % 5 == 4 else f"k{base + i}".encode()
            headers = [("status", b"SENT"), ("n", str(i).encode())][: i % 3]
            builder.append(i, 1_700_000_000_000 + i, key, f"v{base + i}".encode(), headers)
        raw = bytearray(builder.build())
        raw[:8] = base.to_bytes(8, "big")  # the broker's base offset
        data += bytes(raw)
        base += size
    return data


def fields(m: Any) -> tuple[Any, ...]:
    return (
        m.topic,
        m.partition,
        m.offset,
        m.timestamp,
        m.timestamp_type,
        m.key,
        m.value,
        m.checksum,
        m.serialized_key_size,
        m.serialized_value_size,
        list(m.headers),
    )


@pytest.mark.parametrize("compression", [0, 4])
@pytest.mark.parametrize("max_records", [1, 3, 7, 40, None])
def test_records_and_positions_are_aiokafkas(compression: int, max_records: int | None) -> None:
    install()
    data = batches([5, 1, 9, 4], compression)
    args = (TP, None, 2, None, None, True, 0)  # from offset 2: the first two are skipped
    ours = aiokafka_fetcher.PartitionRecords(TP, MemoryRecords(data), *args[1:])
    theirs = aiokafka_fetcher.PartitionRecords.__base__(TP, MemoryRecords(data), *args[1:])
    assert type(ours) is not type(theirs)
    while True:
        got = ours.take(max_records)
        want = list(islice(theirs, max_records))
        assert [fields(m) for m in got] == [fields(m) for m in want]
        assert ours.next_fetch_offset == theirs.next_fetch_offset
        if max_records is None or len(want) < max_records:  # aiokafka's are all handed out
            break
    assert ours.next_fetch_offset == 19
