"""The broker's record limits, read at start (no record may exceed them), on the real broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from pipeline.core import record_size
from pipeline.kafka import (
    CLOCK_MARGIN_MS,
    DEFAULT_MAX_MESSAGE_BYTES,
    TopicLimits,
    ensure_topic,
    topic_limits,
)

pytestmark = [pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.kafka
async def test_limits_come_from_the_topic_and_the_broker(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        plain, small = (f"limits-{w}-{uuid.uuid4().hex[:8]}" for w in ("plain", "small"))
        await ensure_topic(admin, plain, 1)
        await ensure_topic(
            admin,
            small,
            1,
            {"max.message.bytes": "200000", "message.timestamp.after.max.ms": "600000"},
        )
        limits = await topic_limits(admin, [plain, small])
    finally:
        await admin.close()
    # The suite's broker runs at Kafka's defaults.
    assert limits[plain] == TopicLimits(
        max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES,
        timestamp_after_max_ms=3_600_000,
        timestamp_before_max_ms=2**63 - 1,
    )
    assert limits[small].max_message_bytes == 200_000
    assert limits[small].timestamp_after_max_ms == 600_000


def test_record_size_bounds_the_batch_a_record_makes() -> None:
    cases = [
        (b"k" * 40, b"v" * 1_000_000, [("event_id", b"e" * 36), ("provider", b"tencent")]),
        (None, b"", []),
        (b"", b"x", [("\u00e9t\u00e9", b"y" * 300)] * 50),
    ]
    for key, value, headers in cases:
        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, 1 << 24)
        builder.append(0, 2**41, key, value, headers)
        batch = len(builder.build())
        # The one-record batch fits the topic's limit when the record fits `record_bytes`.
        overhead = DEFAULT_MAX_MESSAGE_BYTES - TopicLimits().record_bytes
        size = record_size(key, value, headers)
        assert batch <= size + overhead  # an upper bound...
        assert size + overhead - batch <= 4096 + 64 + 10 * len(headers)  # ...and not a loose one


def test_stamp_window_keeps_a_margin_inside_the_broker_window() -> None:
    now = 10**12
    lo, hi = TopicLimits(timestamp_after_max_ms=600_000).stamp_window(now)
    assert hi == now + 600_000 - CLOCK_MARGIN_MS
    assert lo < 0  # before.max.ms is unbounded by default
