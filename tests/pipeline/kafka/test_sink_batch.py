"""The sink's batches, filled a run of records at a time: the bytes aiokafka's `append` makes."""

from __future__ import annotations

from aiokafka.producer.message_accumulator import BatchBuilder

from pipeline.kafka import Record
from pipeline.kafka._sink import Batch, _fill


def test_fill_builds_what_append_builds_and_stops_where_it_does() -> None:
    records: list[Record] = [
        (None if i % 4 == 3 else b"k%d" % i, b"v" * (i * 37), [("status", b"SENT")][: i % 2], i)
        for i in range(60)
    ]
    for codec in (0, 4):
        ours: list[bytes] = []
        theirs: list[bytes] = []
        cuts: list[tuple[int, int]] = []
        start = other = 0
        while start < len(records):
            batch, reference = Batch(4096, codec), BatchBuilder(4096, codec)
            end, other_end = batch.fill(records, start), _fill(reference, records, other)
            cuts.append((end, other_end))
            ours.append(bytes(batch._build()))
            theirs.append(bytes(reference._build()))
            assert batch.record_count() == end - start
            start, other = end, other_end
        assert ours == theirs
        assert len(cuts) > 3 and all(a == b for a, b in cuts)
