"""Writes records with the producer's batch API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from ..core._batch import DeadLetter, OutputRecord
from ._partitioner import partitions_for

Record = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]], int]

#: Size of one producer batch; large batches amortise the per-request cost.
PRODUCER_BATCH_BYTES: Final = 1024 * 1024


class Sink:
    """Writes records with the producer's batch API, partitioned as Kafka's Java client does."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer

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
        dead_topic: str,
        dead: Sequence[DeadLetter],
    ) -> list[asyncio.Future[Any]]:
        """Queue a batch's events (murmur2-partitioned by key) and dead letters (spread by their
        source key); return the futures to wait for before committing."""
        futures: list[asyncio.Future[Any]] = []
        if outputs:
            count = await self.partition_count(topic)
            futures += await self.send(
                topic, outputs, partitions_for([o.key for o in outputs], count)
            )
        if dead:
            count = await self.partition_count(dead_topic)
            records = [(d.key, d.value, d.headers, d.timestamp_ms) for d in dead]
            parts = partitions_for([d.key for d in dead], count)
            futures += await self.send(dead_topic, records, parts)
        return futures

    async def send(
        self,
        topic: str,
        records: Sequence[Record],
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
