"""Kafka plumbing of the benchmark: topics, loading, watching and reading outputs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from benchmarks.e2e.config import PARTITIONS

T = TypeVar("T")

# -- Kafka plumbing -----------------------------------------------------------------------------


async def create_topics(bootstrap: str, specs: list[tuple[str, int, dict[str, str]]]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, n, 1, topic_configs=configs) for name, n, configs in specs]
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.05)


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def load_topic(bootstrap: str, topic: str, records: Sequence[Any]) -> float:
    """Write records to their partitions with their timestamps and headers; return seconds."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        linger_ms=5,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        by_partition: dict[int, list[Any]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append(r)
        futures = []
        for partition, rs in by_partition.items():
            batch = producer.create_batch()
            for r in rs:
                while (
                    batch.append(
                        key=None, value=r.value, timestamp=r.timestamp_ms, headers=r.headers
                    )
                    is None
                ):
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


class Watcher:
    """End offsets of a topic (no group, no fetching): cheap progress polls."""

    def __init__(self, bootstrap: str) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.consumer.start()

    async def count(self, topic: str) -> int:
        from aiokafka import TopicPartition

        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await self.consumer.end_offsets(tps)
        return sum(ends.values())

    async def wait_for(
        self, topic: str, target: int, timeout: float, settle: float, alive: Any = None
    ) -> tuple[int, bool, float]:
        """Poll until `target` records are on `topic` and the count is stable for `settle` s.
        Returns (count, reached, wall time the target was first seen)."""
        deadline = time.monotonic() + timeout
        count = await self.count(topic)
        while count < target and time.monotonic() < deadline and (alive is None or alive()):
            await asyncio.sleep(0.02)
            count = await self.count(topic)
        reached_at = time.time()
        reached = count >= target
        while True:  # late extras (duplicates) must be seen too
            await asyncio.sleep(settle)
            again = await self.count(topic)
            if again == count:
                return count, reached, reached_at
            count = again

    async def stop(self) -> None:
        await self.consumer.stop()


def _stamp_key_value(m: Any) -> tuple[int, bytes | None, bytes]:
    return m.timestamp, m.key, m.value


@overload
async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes]]: ...
@overload
async def read_topic(bootstrap: str, topic: str, view: Callable[[Any], T]) -> list[T]: ...
async def read_topic(
    bootstrap: str, topic: str, view: Callable[[Any], Any] = _stamp_key_value
) -> list[Any]:
    """`view` of every record of the topic (default: timestamp, key, value)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            batches = await consumer.getmany(*left, timeout_ms=500, max_records=100_000)
            for tp, messages in batches.items():
                out += [view(m) for m in messages]
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return out
