"""Stage *dedupe* of topology `partitioned`: repartition partition p → window p → output p.

Group `<group>.dedupe` on the repartition topic. Each owned partition p has its own window
(capacity `window_max_messages // P`, so an instance's memory falls as instances are added),
restored from output partition p, its changelog, before p's first batch and dropped when p goes.
What passes is written to output partition p with the same key, value, headers and timestamp.

With `exactly_once`, output partition p is written by its own transactional producer
(_transactions.py): each batch's records for p and its offsets of p commit in one transaction,
and opening p's producer on assignment fences the previous owner before p is restored.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import anyio
from aiokafka import TopicPartition

from schemas import PROVIDERS, STATUS_INDEX

from .._config import Settings
from ..core._forward import passing
from ..core._window import Window
from ._clients import METADATA_MAX_AGE_MS, kafka_options, new_group_consumer
from ._restore import Restorer
from ._route import repartition_topic
from ._sink import Record, Sent, Sink
from ._stage import Stage
from ._transactions import PartitionLost, PartitionWriters

log = logging.getLogger("pipeline.kafka")

STATUSES = sorted(STATUS_INDEX, key=STATUS_INDEX.__getitem__)


def window_capacity(settings: Settings, partitions: int) -> int:
    return max(1, settings.window_max_messages // partitions)


class Dedupe(Stage):
    name = "dedupe"

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        restorer: Restorer,
        partitions: int,
        stopping: anyio.Event,
    ) -> None:
        self.consumer_group = f"{settings.group_id}.dedupe"
        consumer = new_group_consumer(settings, self.consumer_group)
        super().__init__(settings, consumer, sink, stopping)
        self.restorer = restorer
        self.partitions = partitions
        self.capacity = window_capacity(settings, partitions)
        self.windows: dict[int, Window] = {}
        self.topic = repartition_topic(settings)
        self.tolerance_ms = settings.clock_skew_tolerance_s * 1000
        #: Events forwarded, by (provider, status) code (the route stage's core counts events
        #: before dedupe).
        self.emitted: Counter[tuple[int, int]] = Counter()
        self.writers = new_writers(settings) if settings.exactly_once else None

    def events_out(self) -> Counter[tuple[str, str]]:
        return Counter({(PROVIDERS[p], STATUSES[s]): n for (p, s), n in self.emitted.items()})

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic], listener=self.listener())

    def new_window(self) -> Window:
        return Window(self.capacity, self.settings.window_ttl_s * 1000)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in sorted(partitions):
            if tp.partition not in self.windows:
                if self.writers is not None:
                    # Fence p's previous owner first: its open transaction is aborted and it
                    # can write no more, so the (read_committed) restore sees p's final state.
                    await self.writers.open(tp.partition)
                window = self.new_window()
                # Snapshots (pipeline/kafka/_snapshot.py) plug in here: load p's newest valid
                # snapshot and restore only the output records after its offset.
                await self.restorer.restore(tp.partition, window, self.capacity)
                self.windows[tp.partition] = window

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.windows.pop(tp.partition, None)
            if self.writers is not None:
                await self.writers.close(tp.partition)

    async def commit(self, offsets: dict[TopicPartition, int]) -> bool:
        if self.writers is not None:
            return True  # committed inside each partition's transaction (process)
        return await super().commit(offsets)

    async def stop(self) -> None:
        if self.writers is not None:
            await self.writers.close_all()

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        wall_ms = time.time_ns() // 1_000_000
        sent: list[Sent] = []
        topic = self.settings.output_topic
        for tp, messages in batches.items():
            window = self.windows.get(tp.partition)
            if window is None:  # lost (fenced) since: the group is rebalancing it away
                continue
            keep = passing(
                window,
                [(m.key, m.headers, m.timestamp) for m in messages],
                wall_ms,
                self.tolerance_ms,
                self.emitted,
            )
            if keep:
                # A list of headers: aiokafka's batch builder takes nothing else.
                records: list[Record] = [
                    (m.key, m.value, list(m.headers), m.timestamp)
                    for m in (messages[i] for i in keep)
                ]
            else:
                records = []
            if self.writers is None:
                if records:
                    sent += await self.sink.send(topic, records, [tp.partition] * len(records))
                continue
            try:
                # Also without records: the batch's offsets commit in the transaction.
                await self.writers.write(
                    tp.partition, records, {tp: messages[-1].offset + 1}, self.consumer_group
                )
            except PartitionLost as exc:
                # Another member owns p now and replays this batch; the group rebalances us.
                self.windows.pop(tp.partition, None)
                log.warning("partition lost", extra={"stage": self.name, "error": str(exc)})
        return sent


def new_writers(settings: Settings) -> PartitionWriters:
    return PartitionWriters(
        settings.group_id,
        settings.output_topic,
        {
            **kafka_options(settings),
            "compression_type": None if settings.compression == "none" else settings.compression,
            "linger_ms": settings.linger_ms,
            "metadata_max_age_ms": METADATA_MAX_AGE_MS,
        },
    )
