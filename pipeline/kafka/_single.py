"""Topology `single`: one stage, one window, for exactly one instance.

One batch at a time: `getmany` → `Core.process` → output and dead-letter records written with the
producer's batch API (one future per partition batch, not per record) → wait for every ack →
commit the batch's offsets. Nothing is committed before the broker holds what it caused, so a
crash at any point replays at most the uncommitted batch, and the dedupe window (rebuilt from the
output topic) drops what was already emitted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import PROVIDER_INDEX, STATUS_INDEX

from .._config import Settings
from .._health import Health
from .._metrics import consumer_lag
from ..core._batch import Core, CoreStats
from ..core._window import Window, message_hash
from ._clients import kafka_options, start_with_retry
from ._fetch import input_records, install
from ._limits import TopicLimits, topic_limits
from ._partitioner import partitions_for
from ._sink import PRODUCER_BATCH_BYTES, Sent, Sink
from ._topics import check_topics, matching_topics

log = logging.getLogger("pipeline.kafka")


# Header values of our own output records, straight to the window's codes (no decoding).
_STATUS_CODES: Final = {s.encode(): i for s, i in STATUS_INDEX.items()}
_PROVIDER_CODES: Final = {p.encode(): i for p, i in PROVIDER_INDEX.items()}


class OutputFollower:
    """Keeps the window in step with the output topic: the dedupe log of every instance.

    On start it loads the last `ttl` of output records; afterwards it keeps reading, so events
    emitted by other instances of the group (or other workers) reach this window too. It reads
    keys and headers only: the values are never decoded.
    """

    def __init__(self, settings: Settings, window: Window) -> None:
        self.settings = settings
        self.window = window
        self.consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        # Fix (issue 5, see Processor.run_batch): end offsets asked on the follower's own
        # connection wait behind its long-polling fetch (up to 500 ms); this client only
        # ever sends ListOffsets, so its answers come at once.
        self.probe = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
        self.loaded = 0

    async def start(self) -> None:
        await start_with_retry(self.consumer, "output follower", self.settings)
        await start_with_retry(self.probe, "output follower probe", self.settings)
        topic = self.settings.output_topic
        parts = self.consumer.partitions_for_topic(topic)
        if parts is None:
            await self.consumer._client.force_metadata_update()
            parts = self.consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        if not tps:
            return
        cutoff = int(time.time() * 1000) - self.settings.window_ttl_s * 1000
        found = await self.consumer.offsets_for_times({tp: cutoff for tp in tps})
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            hit = found.get(tp)
            self.consumer.seek(tp, hit.offset if hit is not None else ends[tp])

    async def catch_up(self, quiet: bool = False) -> None:
        """Return once everything on the output topic up to now is in the window."""
        started = time.monotonic()
        tps = list(self.consumer.assignment())
        if not tps:
            return
        ends = await self.probe.end_offsets(tps)
        before = self.loaded
        while True:
            behind = [tp for tp in tps if await self.consumer.position(tp) < ends[tp]]
            if not behind:
                break
            # Quiet (per batch) catch-ups run beside `follow()`, which may take the records
            # from under this poll: look at the positions again soon rather than in 500 ms.
            await self._poll(10 if quiet else 500)
        if quiet:
            return
        log.info(
            "window rebuilt from output topic",
            extra={
                "events": self.loaded - before,
                "messages": len(self.window),
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    async def _poll(self, timeout_ms: int) -> None:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=50_000)
        hashes: list[int] = []
        statuses: list[int] = []
        providers: list[int] = []
        now_ms = 0
        for messages in batches.values():
            for m in messages:
                status = provider = None
                for name, value in m.headers:
                    if name == "status":
                        status = _STATUS_CODES.get(value)
                    elif name == "provider":
                        provider = _PROVIDER_CODES.get(value)
                if status is None or provider is None or m.key is None:
                    continue  # not one of ours; the output topic should hold nothing else
                hashes.append(message_hash(m.key))
                statuses.append(status)
                providers.append(provider)
                if m.timestamp > now_ms:
                    now_ms = m.timestamp
        if hashes:
            self.window.load_batch(hashes, statuses, providers, now_ms)
            self.loaded += len(hashes)

    async def follow(self, shared: Callable[[], bool]) -> None:
        """Keep reading the output topic while other members own input partitions.

        Alone in the group, this instance already holds everything it emitted, and re-reading
        its own output costs a quarter of its CPU: it then only keeps its position, and a
        later catch-up reads what it skipped.
        """
        while True:
            if shared():
                await self._poll(200)
            else:
                await anyio.sleep(0.5)

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.probe.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what is done before partitions go; catch the window up before new ones come."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # The lock is held while a batch is in hand: waiting for it means the batch is committed.
        async with self.processor.lock:
            self.processor.ready.clear()
            self.processor.health.set_ready(False)
            log.info("partitions revoked", extra={"partitions": sorted(str(tp) for tp in revoked)})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # aiokafka may fetch for the new assignment before this returns; `ready` holds the
        # batch back until the window has everything the previous owners emitted.
        await self.processor.follower.catch_up()
        self.processor.ready.set()
        self.processor.health.set_ready(True)
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})


class Processor:
    def __init__(self, settings: Settings, core: Core) -> None:
        self.settings = settings
        self.core = core
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.stopping = anyio.Event()
        install()  # records aiokafka cannot parse become dead letters (see _fetch.py)
        self.follower = OutputFollower(settings, core.window)
        options = kafka_options(settings)

        def producer(batch_bytes: int) -> AIOKafkaProducer:
            return AIOKafkaProducer(
                **options,
                enable_idempotence=True,
                acks="all",
                compression_type=None if settings.compression == "none" else settings.compression,
                linger_ms=settings.linger_ms,
                max_batch_size=batch_bytes,
                max_request_size=8 * PRODUCER_BATCH_BYTES,
            )

        self.consumer = AIOKafkaConsumer(
            **options,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=settings.isolation_level,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        self.sink = Sink(producer, settings.dead_letter_topic)
        self.limits: dict[str, TopicLimits] = {}
        self.batches = 0
        self.positions: dict[TopicPartition, int] = {}
        self.on_batch: Callable[[float, float, dict[TopicPartition, int]], None] | None = None
        self.health = Health(settings.liveness_timeout_s)

    async def check_topics(self) -> None:
        """Stop start-up on a missing or forbidden topic; learn the broker's record limits."""
        settings = self.settings
        admin = AIOKafkaAdminClient(**kafka_options(settings))
        await start_with_retry(admin, "admin", settings)
        try:
            roles = {t: "input (--input-topics)" for t in settings.input_topics}
            if settings.input_pattern:
                roles = {}
                if not await matching_topics(admin, settings.input_pattern):
                    log.warning(
                        "no topic matches the input pattern yet",
                        extra={"pattern": settings.input_pattern},
                    )
            roles[settings.output_topic] = "output (--output-topic)"
            roles[settings.dead_letter_topic] = "dead-letter (--dead-letter-topic)"
            await check_topics(admin, roles)
            self.limits = await topic_limits(
                admin, [settings.output_topic, settings.dead_letter_topic]
            )
            out, dlq = self.limits[settings.output_topic], self.limits[settings.dead_letter_topic]
            self.core.limit_records(
                out.record_bytes, min(settings.dead_letter_max_bytes, dlq.record_bytes)
            )
        finally:
            await admin.close()

    async def start(self) -> None:
        await self.check_topics()
        await self.sink.start(
            self.limits, lambda producer: start_with_retry(producer, "producer", self.settings)
        )
        await self.follower.start()
        await self.follower.catch_up()
        listener = _Rebalance(self)
        if self.settings.input_pattern:
            self.consumer.subscribe(pattern=self.settings.input_pattern, listener=listener)
        else:
            self.consumer.subscribe(self.settings.input_topics, listener=listener)
        await start_with_retry(self.consumer, "consumer", self.settings)
        log.info(
            "started",
            extra={
                "group": self.settings.group_id,
                "inputs": self.settings.input_pattern or self.settings.input_topics,
                "output": self.settings.output_topic,
                "dead_letter": self.settings.dead_letter_topic,
            },
        )

    # What the metrics read at scrape time (pipeline._metrics.Observed).
    def stats(self) -> list[CoreStats]:
        return [self.core.stats]

    def windows(self) -> list[Window]:
        return [self.core.window]

    def lag(self) -> Iterator[tuple[str, int, int]]:
        return consumer_lag(self.consumer, self.positions)

    def shares_inputs(self) -> bool:
        """True when other members of the group own some of the input partitions."""
        consumer = self.consumer
        total = sum(len(consumer.partitions_for_topic(t) or ()) for t in consumer.subscription())
        return len(consumer.assignment()) < total

    async def run_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        # Fix (issue 5, tests/integration/test_two_instances.py): a provider retry fetched by
        # this instance right after another instance's events for the original were
        # acknowledged was emitted a second time: `follow()` had not read them yet. When the
        # input is shared, the window first takes in the output topic up to its current end
        # (one ListOffsets round trip; the follower usually has everything already).
        if self.shares_inputs():
            await self.follower.catch_up(quiet=True)
        records, unreadable = input_records(batches, self.core.decoder.config.dead_letter_max_bytes)
        result = self.core.process(records)
        if unreadable:
            result.dead_letters.extend(unreadable)
            self.core.stats.dead_letters.update(d.error_class for d in unreadable)
        sent: list[Sent] = []
        if result.outputs:
            topic = self.settings.output_topic
            count = await self.sink.partition_count(topic)
            parts = partitions_for([o.key for o in result.outputs], count)
            sent += await self.sink.send(topic, result.outputs, parts)
        if result.dead_letters:
            topic = self.settings.dead_letter_topic
            count = await self.sink.partition_count(topic)
            dead = [(d.key, d.value, d.headers, d.timestamp_ms) for d in result.dead_letters]
            parts = partitions_for([d.key for d in result.dead_letters], count)
            sent += await self.sink.send(topic, dead, parts)
        # Every record acknowledged, or its dead letter (what the broker refuses): then commit.
        await self.sink.flush(sent)
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
        commit_started = time.perf_counter()
        await self.consumer.commit(offsets)
        self.positions.update(offsets)
        done = time.perf_counter()
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(done - started, done - commit_started, offsets)

    async def run(self) -> None:
        fetch_wait = self.settings.fetch_max_wait_ms
        max_records = self.settings.batch_max_records
        health = self.health
        health.beat()
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=fetch_wait, max_records=max_records)
            if not batches:
                health.idle()
                continue
            await self._acquire_ready()
            try:
                # A rebalance may have run while the batch was fetched: drop what is not ours.
                owned = self.consumer.assignment()
                batches = {tp: m for tp, m in batches.items() if tp in owned and m}
                if batches:
                    await self.run_batch(batches)
            finally:
                self.lock.release()
            health.beat()

    async def _acquire_ready(self) -> None:
        """Take the batch lock at a moment when no rebalance is between revoke and assign."""
        while True:
            await self.ready.wait()
            await self.lock.acquire()
            if self.ready.is_set():
                return
            self.lock.release()

    async def stop(self) -> None:
        # Order matters: leave the group (commits are already done), then flush the producer.
        # Each is stopped even if another fails (or was never started: a stop during start-up).
        for client in (self.consumer, self.sink, self.follower):
            try:
                await client.stop()
            except Exception as exc:
                log.warning(
                    "stop failed", extra={"client": type(client).__name__, "error": repr(exc)}
                )
