"""Stage *route* of topology `partitioned`: raw records → events on the repartition topic.

Stateless (group `<group>` on the raw topics): decode → normalise → encode with a core that has
no window, then each event goes to `<output>.by-message`, keyed `<provider>:<message_key>` and
murmur2-partitioned into P partitions (P = the output topic's count), so every copy of one
message meets the one window that owns it. Dead letters as in every topology.
"""

from __future__ import annotations

from typing import Any

import anyio
from aiokafka import TopicPartition

from .._config import Settings
from ..core._batch import Core
from ._clients import new_group_consumer
from ._fetch import input_records
from ._sink import Sent, Sink
from ._stage import Stage


def repartition_topic(settings: Settings) -> str:
    return f"{settings.output_topic}.by-message"


class Route(Stage):
    name = "route"

    def __init__(self, settings: Settings, core: Core, sink: Sink, stopping: anyio.Event) -> None:
        super().__init__(settings, new_group_consumer(settings, settings.group_id), sink, stopping)
        self.core = core
        self.topic = repartition_topic(settings)

    def subscribe(self) -> None:
        if self.settings.input_pattern:
            self.consumer.subscribe(pattern=self.settings.input_pattern, listener=self.listener())
        else:
            self.consumer.subscribe(self.settings.input_topics, listener=self.listener())

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        return await write_events(self.core, self.sink, batches, self.topic, self.settings)


async def write_events(
    core: Core,
    sink: Sink,
    batches: dict[TopicPartition, list[Any]],
    topic: str,
    settings: Settings,
) -> list[Sent]:
    """Raw records through the core; events to `topic`, dead letters to theirs (queued)."""
    records, unreadable = input_records(batches, core.decoder.config.dead_letter_max_bytes)
    result = core.process(records)
    if unreadable:
        result.dead_letters.extend(unreadable)
        core.stats.dead_letters.update(d.error_class for d in unreadable)
    return await sink.write(topic, result.outputs, result.dead_letters)
