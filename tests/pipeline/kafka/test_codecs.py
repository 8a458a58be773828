"""Record batches compressed at the configured level, and read back unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import aiokafka.record._crecords.default_records as c_default_records
import aiokafka.record.default_records as py_default_records
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from pipeline.config import Settings
from pipeline.kafka import compression_options

ENCODERS = ("zstd_encode", "lz4_encode", "gzip_encode")
VALUES = [
    f'{{"message_key":"{i * 7919 % 100_003}|+86137{i * 104_729 % 10**8:08d}","status":"'
    f'{("DELIVERED", "SENT", "FAILED")[i % 3]}","at":"2024-06-04T07:{i % 60:02d}:00Z"}}'.encode()
    for i in range(600)
]


@pytest.fixture(autouse=True)
def aiokafkas_own_levels() -> Iterator[None]:
    """The level is process-wide: each test leaves aiokafka's codecs as it found them."""
    modules = (c_default_records, py_default_records)
    saved = [(m, n, getattr(m, n)) for m in modules for n in ENCODERS]
    yield
    for module, name, encode in saved:
        setattr(module, name, encode)


def build(codec: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 1 << 22)
    for i, value in enumerate(VALUES):
        builder.append(i, 1_700_000_000_000 + i, None, value, [])
    return bytes(builder.build())


@pytest.mark.parametrize(
    ("compression", "codec", "low", "high"),
    [("zstd", 4, -50, 19), ("lz4", 3, 1, 12), ("gzip", 1, 1, 9)],
)
def test_batches_are_compressed_at_the_level(
    compression: str, codec: int, low: int, high: int
) -> None:
    sizes = {}
    for level in (low, high):
        options = compression_options(
            Settings(compression=compression, compression_level=level)  # type: ignore[arg-type]
        )
        assert options == {"compression_type": compression}
        data = build(codec)
        batch = MemoryRecords(data).next_batch()
        assert batch is not None and batch.compression_type == codec
        assert [r.value for r in batch] == VALUES
        sizes[level] = len(data)
    assert sizes[low] > sizes[high], sizes


def test_no_compression_has_no_level() -> None:
    assert compression_options(Settings(compression="none")) == {"compression_type": None}
