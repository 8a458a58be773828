"""Topology `single`: one stage, one window, no repartition hop, for exactly one instance.

It refuses to share: when another member holds partitions of its group it stops (exit 2) rather
than emit duplicates, since its one window sees only what it consumed itself. The window is
rebuilt from every output partition at each assignment, before the first batch: while this
member held nothing, another may have written the output (one that joined, then refused, or
the previous instance of a deployment); then every partition of the state topic is read back
(the time-outs that fired), whatever its partition count. Outputs are partitioned by the
output topic's current partition count, so a topic that grows is written by its new count from
the next batch.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from aiokafka import TopicPartition

from ..config import Settings, state_topic
from ..core import Core
from ..errors import SettingProblem
from ..kafka import Sent, Sink, new_group_consumer
from ..state import Restorer, Window
from ._dedupe import IDLE_S
from ._route import write_events
from ._stage import InFlight, Stage


class SingleStage(Stage):
    name = "single"

    def __init__(
        self,
        settings: Settings,
        core: Core[Window],
        sink: Sink,
        restorer: Restorer,
        stopping: anyio.Event,
    ) -> None:
        super().__init__(settings, new_group_consumer(settings, settings.group_id), sink, stopping)
        self.core = core
        self.restorer = restorer
        #: Output partitions the window has still to be rebuilt from, and each one's share of
        #: its capacity (set at each assignment).
        self.unread: list[int] = []
        self.share = 0
        #: Every partition of the state topic (read back after the last output partition).
        self.states: list[int] = []
        self.last_batch = time.monotonic()

    def subscribe(self) -> None:
        if self.settings.input_pattern:
            self.consumer.subscribe(pattern=self.settings.input_pattern, listener=self.listener())
        else:
            self.consumer.subscribe(self.settings.input_topics, listener=self.listener())

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        consumer = self.consumer
        total = sum(len(consumer.partitions_for_topic(t) or ()) for t in consumer.subscription())
        if len(partitions) < total:
            raise SettingProblem(
                f"topology single: another member holds partitions of group "
                f"{self.settings.group_id!r} ({len(partitions)} of {total} assigned "
                "here); single runs exactly one instance: stop the others or use "
                "--topology partitioned"
            )
        window = self.window()
        window.clear()
        count = await self.sink.partition_count(self.settings.output_topic)
        self.unread, self.share = list(range(count)), -(-window.max_messages // count)
        states = state_topic(self.settings)
        self.states = list(range(await self.sink.partition_count(states))) if states else []
        self.hold(partitions)

    async def restore_step(self) -> set[TopicPartition]:
        """Rebuild the window from one output partition; every partition held is ready after
        the last."""
        if self.unread:
            lifecycle = self.core.lifecycle
            # The state topic is read back once the window holds every output partition.
            states = self.states if len(self.unread) == 1 else []
            await self.restorer.restore(
                self.unread[0], self.window(), self.share, lifecycle, read_back=states
            )
            del self.unread[0]
        return set() if self.unread else set(self.pending)

    def window(self) -> Window:
        assert self.core.window is not None  # topology single always dedupes
        return self.core.window

    async def process(self, batches: dict[TopicPartition, list[Any]]) -> list[Sent]:
        self.last_batch = time.monotonic()
        return await write_events(
            self.core, self.sink, batches, self.settings.output_topic, self.settings
        )

    async def tick(self) -> None:
        """The idle rule of time-outs (see DedupeStage.tick): with no batch for `IDLE_S`, what
        is due by the wall clock (less `IDLE_S`) times out."""
        lifecycle = self.core.lifecycle
        now = time.monotonic()
        if lifecycle is None or self.pending or now - self.last_batch < IDLE_S:
            return
        states = lifecycle.expire(idle_ms=time.time_ns() // 1_000_000 - IDLE_S * 1000)
        if states:
            started = time.perf_counter()
            sent = await self.sink.write(
                self.settings.output_topic, [], [], states, state_topic(self.settings)
            )
            self.in_flight.append(InFlight(sent, {}, started))
