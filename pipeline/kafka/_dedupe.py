"""Stage *dedupe* of topology `partitioned`: repartition partition p → window p → output p.

Group `<group>.dedupe` on the repartition topic. Each owned partition p has its own window
(capacity `window_max_messages // P`, so an instance's memory falls as instances are added),
restored from output partition p, its changelog, before p's first batch and dropped when p goes.
What passes is written to output partition p with the same key, value, headers and timestamp.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import anyio
from aiokafka import TopicPartition

from schemas import PROVIDERS, STATUS_INDEX

from .._config import Settings
from ..core._forward import passing
from ..core._window import Window
from ._clients import new_group_consumer
from ._restore import Restorer
from ._route import repartition_topic
from ._sink import Record, Sent, Sink
from ._stage import Stage

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
        consumer = new_group_consumer(settings, f"{settings.group_id}.dedupe")
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

    def events_out(self) -> Counter[tuple[str, str]]:
        return Counter({(PROVIDERS[p], STATUSES[s]): n for (p, s), n in self.emitted.items()})

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic], listener=self.listener())

    def new_window(self) -> Window:
        return Window(self.capacity, self.settings.window_ttl_s * 1000)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in sorted(partitions):
            if tp.partition not in self.windows:
                window = self.new_window()
                # Snapshots (pipeline/kafka/_snapshot.py) plug in here: load p's newest valid
                # snapshot and restore only the output records after its offset.
                await self.restorer.restore(tp.partition, window, self.capacity)
                self.windows[tp.partition] = window

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.windows.pop(tp.partition, None)

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        wall_ms = time.time_ns() // 1_000_000
        sent: list[Sent] = []
        topic = self.settings.output_topic
        for tp, messages in batches.items():
            window = self.windows[tp.partition]
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
                sent += await self.sink.send(topic, records, [tp.partition] * len(records))
        return sent
