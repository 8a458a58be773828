"""Stage *route* of topology `partitioned`: raw records → events on the repartition topic.

Stateless (group `<group>` on the raw topics): decode → normalise → encode with a core that has
no window, then each event goes to `<output>.by-message`, keyed `<provider>:<message_key>` and
murmur2-partitioned into P partitions (P = the output topic's count), so every copy of one
message meets the one window that owns it. Dead letters as in every topology.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import anyio
from aiokafka import TopicPartition

from ..config import Settings, state_topic
from ..core import BatchResult, Core, DeadLetter, InputRecord, OutputRecord
from ..kafka import Sent, Sink, input_records, new_group_consumer
from ..state import Window
from ._stage import Stage


def repartition_topic(settings: Settings) -> str:
    return f"{settings.output_topic}.by-message"


class RouteStage(Stage):
    name = "route"

    def __init__(
        self, settings: Settings, core: Core[Window], sink: Sink, stopping: anyio.Event
    ) -> None:
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
    core: Core[Window],
    sink: Sink,
    batches: dict[TopicPartition, list[Any]],
    topic: str,
    settings: Settings,
) -> list[Sent]:
    """Raw records through the core; events to `topic`, dead letters to theirs (queued)."""
    records, unreadable = input_records(batches, core.decoder.config.dead_letter_max_bytes)
    result = await process_in_slices(core, records)
    if unreadable:
        result.dead_letters.extend(unreadable)
        core.stats.dead_letters.update(d.error_class for d in unreadable)
    return await sink.write(
        topic, result.outputs, result.dead_letters, result.states, state_topic(settings)
    )


#: Body bytes the core decodes between two returns to the event loop: about 10 ms of decoding,
#: so heartbeats, metrics scrapes and signals are served during a batch of any size.
SLICE_BYTES: Final = 1 << 20


def slices(records: Sequence[InputRecord], max_bytes: int = SLICE_BYTES) -> list[slice]:
    """Consecutive runs of `records` of at most `max_bytes` of bodies (a larger body alone)."""
    cuts: list[slice] = []
    start = size = 0
    for i, record in enumerate(records):
        size += len(record.value)
        if size > max_bytes and i > start:
            cuts.append(slice(start, i))
            start, size = i, len(record.value)
    if start < len(records):
        cuts.append(slice(start, len(records)))
    return cuts


async def process_in_slices(core: Core[Window], records: Sequence[InputRecord]) -> BatchResult:
    """`core.process` slice by slice, yielding to the event loop between slices. The window
    sees the records in the same order as in one call; its clock moves slice by slice."""
    cuts = slices(records)
    if len(cuts) <= 1:
        return core.process(records)
    outputs: list[OutputRecord] = []
    dead: list[DeadLetter] = []
    states: list[OutputRecord] = []
    for i, cut in enumerate(cuts):
        if i:
            await anyio.sleep(0)
        part = core.process(records[cut])
        outputs += part.outputs
        dead += part.dead_letters
        states += part.states
    return BatchResult(outputs, dead, states or ())
