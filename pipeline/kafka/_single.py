"""Topology `single`: one stage, one window, no repartition hop, for exactly one instance.

It refuses to share: when another member holds partitions of its group it stops (exit 2) rather
than emit duplicates, since its one window sees only what it consumed itself. The window is
rebuilt from every output partition at start; outputs are partitioned by the output topic's
current partition count, so a topic that grows is written by its new count from the next batch.
"""

from __future__ import annotations

from typing import Any

import anyio
from aiokafka import TopicPartition

from .._config import Settings
from ..core._batch import Core
from ._clients import new_group_consumer
from ._restore import Restorer
from ._route import write_events
from ._sink import Sent, Sink
from ._stage import SettingProblem, Stage


class Single(Stage):
    name = "single"

    def __init__(self, settings: Settings, core: Core, sink: Sink, stopping: anyio.Event) -> None:
        super().__init__(settings, new_group_consumer(settings, settings.group_id), sink, stopping)
        self.core = core

    async def restore(self, restorer: Restorer, partitions: int) -> None:
        window = self.core.window
        assert window is not None
        share = -(-window.max_messages // partitions)
        for p in range(partitions):
            await restorer.restore(p, window, share)

    def subscribe(self) -> None:
        if self.settings.input_pattern:
            self.consumer.subscribe(pattern=self.settings.input_pattern, listener=self.listener())
        else:
            self.consumer.subscribe(self.settings.input_topics, listener=self.listener())

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        consumer = self.consumer
        total = sum(len(consumer.partitions_for_topic(t) or ()) for t in consumer.subscription())
        if len(consumer.assignment()) < total:
            raise SettingProblem(
                f"topology single: another member holds partitions of group "
                f"{self.settings.group_id!r} ({len(consumer.assignment())} of {total} assigned "
                "here); single runs exactly one instance: stop the others or use "
                "--topology partitioned"
            )

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        return await write_events(
            self.core, self.sink, batches, self.settings.output_topic, self.settings
        )
