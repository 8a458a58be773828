"""Writes records with the producer's batch API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

#: Size of one producer batch; large batches amortise the per-request cost.
PRODUCER_BATCH_BYTES: Final = 1024 * 1024


class Sink:
    """Writes records with the producer's batch API, partitioned as Kafka's Java client does."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self._partitions: dict[str, int] = {}

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            parts = await self.producer.partitions_for(topic)
            count = len(parts)
            self._partitions[topic] = count
        return count

    async def send(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]], int]],
        partitions: Sequence[int],
    ) -> list[asyncio.Future[Any]]:
        """Queue `records` (key, value, headers, timestamp) and return one future per batch."""
        by_partition: dict[int, list[int]] = {}
        for i, p in enumerate(partitions):
            by_partition.setdefault(p, []).append(i)
        futures = []
        producer = self.producer
        for partition, indexes in by_partition.items():
            batch = producer.create_batch()
            for i in indexes:
                key, value, headers, stamp = records[i]
                while batch.append(key=key, value=value, timestamp=stamp, headers=headers) is None:
                    if batch.record_count() == 0:
                        raise ValueError(f"record of {len(value)} bytes does not fit a batch")
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
