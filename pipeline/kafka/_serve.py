"""The public face of the Kafka layer: run one process's stages (or N worker processes)."""

from __future__ import annotations

import logging
import signal
import sys

import anyio
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas import PROVIDERS

from .._config import Settings, core_config
from .._metrics import Registry, serve_metrics, standard_metrics
from ..core._batch import Core, parse_routes
from ..core._window import Window
from ._clients import BrokerUnreachable, new_producer, start_with_retry
from ._dedupe import Dedupe
from ._fetch import install
from ._logs import RateLimit
from ._restore import Restorer
from ._route import Route, repartition_topic
from ._single import Single
from ._sink import Sink
from ._stage import SettingProblem, Stage, StageFailed
from ._startup import co_partitioning_broken, prepare
from ._topics import TopicProblem
from ._workers import run_workers

log = logging.getLogger("pipeline.kafka")

#: How often topology `partitioned` looks at the partition counts it depends on.
WATCH_INTERVAL_S = 2.0


class Processor:
    """Everything one process runs: topology `single` (one stage) or `partitioned` (route and
    dedupe, sharing one producer)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = anyio.Event()
        install()  # records aiokafka cannot parse become dead letters (see _fetch.py)
        self.sink = Sink(
            lambda batch_bytes: new_producer(settings, batch_bytes), settings.dead_letter_topic
        )
        self.restorer = Restorer(settings)
        config = core_config(settings)
        single = settings.topology == "single"
        window = Window(settings.window_max_messages, settings.window_ttl_s * 1000)
        self.core = Core(window if single else None, config)
        self.stages: list[Stage] = []
        self.partitions = 0

    def windows(self) -> list[Window]:
        if self.core.window is not None:
            return [self.core.window]
        return [w for s in self.stages if isinstance(s, Dedupe) for w in s.windows.values()]

    async def start(self) -> None:
        settings = self.settings
        layout = await prepare(settings)
        self.partitions = layout.partitions
        # Records are sized against the topics' real limits: the route stage's events go to the
        # repartition topic and then to the output, so the smaller of the two bounds them.
        limits = layout.limits
        dlq = limits[settings.dead_letter_topic].record_bytes
        events = min(
            lim.record_bytes for t, lim in limits.items() if t != settings.dead_letter_topic
        )
        self.core.limit_records(events, min(settings.dead_letter_max_bytes, dlq))
        await self.sink.start(limits, lambda p: start_with_retry(p, "producer", settings))
        await self._open()
        log.info(
            "started",
            extra={
                "group": settings.group_id,
                "topology": settings.topology,
                "inputs": settings.input_pattern or settings.input_topics,
                "output": settings.output_topic,
                "dead_letter": settings.dead_letter_topic,
                "partitions": layout.partitions,
            },
        )

    async def _open(self) -> None:
        """Start the clients; topology single rebuilds its window before it joins the group."""
        settings = self.settings
        await self.restorer.start()
        stopping = self.stopping
        if settings.topology == "single":
            single = Single(settings, self.core, self.sink, stopping)
            self.stages = [single]
            await single.restore(self.restorer, self.partitions)
            single.subscribe()
            await start_with_retry(single.consumer, "consumer", settings)
            return
        route = Route(settings, self.core, self.sink, stopping)
        dedupe = Dedupe(settings, self.sink, self.restorer, self.partitions, stopping)
        self.stages = [route, dedupe]
        dedupe.subscribe()
        await start_with_retry(dedupe.consumer, "dedupe consumer", settings)
        route.subscribe()
        await start_with_retry(route.consumer, "route consumer", settings)

    async def watch_partitions(self) -> None:
        """Topology `partitioned` stops when the output or repartition topic changes its
        partition count: window p would no longer be output partition p."""
        settings = self.settings
        output, repartition = settings.output_topic, repartition_topic(settings)
        while True:
            await anyio.sleep(WATCH_INTERVAL_S)
            cluster = self.sink.producer.client.cluster  # the sink may have renewed its producer
            counts = [len(cluster.partitions_for_topic(t) or ()) for t in (output, repartition)]
            if 0 not in counts and counts != [self.partitions] * 2:
                raise SettingProblem(
                    f"partition count changed while running (started with {self.partitions}): "
                    + co_partitioning_broken(output, counts[0], repartition, counts[1])
                )

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for stage in self.stages:
                tg.start_soon(stage.run)
            if self.settings.topology == "partitioned":
                tg.start_soon(self.watch_partitions)
            await self.stopping.wait()
            # Each stage finishes its batch in hand and returns; the watcher has nothing to do.
            with anyio.move_on_after(self.settings.startup_timeout_s):
                while any(s.lock.locked() for s in self.stages):
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        self.raise_failure()

    def raise_failure(self) -> None:
        for stage in self.stages:
            stage.raise_failure()

    async def stop(self) -> None:
        # Order matters: leave the groups (commits are already done), then flush the producer.
        # Each is stopped even if another fails (or was never started: a stop during start-up).
        clients = [s.consumer for s in self.stages] + [self.restorer, self.sink]
        for client in clients:
            try:
                await client.stop()
            except Exception as exc:
                log.warning(
                    "stop failed", extra={"client": type(client).__name__, "error": repr(exc)}
                )

    @property
    def batches(self) -> int:
        return sum(s.batches for s in self.stages)


async def _watch_signals(processor: Processor, startup: anyio.CancelScope) -> None:
    """First SIGTERM/SIGINT: finish the batch in hand and stop. During start-up (waiting for the
    broker, rebuilding the window) there is no batch: start-up is abandoned at once."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            processor.stopping.set()
            startup.cancel()
            return


def attach_metrics(registry: Registry, processor: Processor) -> None:
    """Export the counters the core and windows already keep (read at scrape time)."""
    m = standard_metrics(registry)
    stats = processor.core.stats

    def per_provider(name: str) -> dict[str, int]:
        totals = [0] * len(PROVIDERS)
        for w in processor.windows():
            for i, n in enumerate(getattr(w.counters, name)):
                totals[i] += n
        return dict(zip(PROVIDERS, totals, strict=True))

    m.records_in.attach(lambda: stats.records_in)
    m.receipts_in.attach(lambda: stats.receipts_in)
    dedupe = [s for s in processor.stages if isinstance(s, Dedupe)]
    m.events_out.attach(lambda: dedupe[0].events_out() if dedupe else stats.events_out)
    m.dead_letters.attach(lambda: stats.dead_letters)
    m.skipped.attach(lambda: stats.skipped)
    m.unmapped_status.attach(lambda: stats.unmapped_statuses)
    m.duplicates.attach(lambda: per_provider("duplicates"))
    m.stale.attach(lambda: per_provider("stale"))
    m.window_evicted_by_count.attach(lambda: per_provider("evicted_by_count"))
    m.window_expired.attach(lambda: per_provider("expired"))
    m.window_messages.attach(lambda: {(): sum(map(len, processor.windows()))})

    def lag() -> dict[tuple[str, str], float]:
        result = {}
        for stage in processor.stages:
            consumer = stage.consumer
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                position = stage.positions.get(tp)
                if high is not None and position is not None:
                    result[tp.topic, str(tp.partition)] = max(0, high - position)
        return result

    m.consumer_lag.attach(lag)

    def on_batch(batch_s: float, commit_s: float, offsets: dict[TopicPartition, int]) -> None:
        m.batch_seconds.observe(batch_s)
        m.commit_seconds.observe(commit_s)
        m.batches.inc()

    for stage in processor.stages:
        stage.on_batch = on_batch


async def serve(settings: Settings) -> None:
    """Run one process's stages until SIGTERM/SIGINT; the batches in hand are committed."""
    processor = Processor(settings)
    try:
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as startup:
                tg.start_soon(_watch_signals, processor, startup)
                await processor.start()
            processor.raise_failure()  # a stage may have failed during start-up
            if processor.stopping.is_set():
                tg.cancel_scope.cancel()
                return
            if settings.metrics_port is not None:
                registry = Registry()
                attach_metrics(registry, processor)
                port = await tg.start(serve_metrics, registry, settings.metrics_port)
                log.info("metrics served", extra={"port": port})
            await processor.run()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await processor.stop()
    log.info("stopped", extra={"batches": processor.batches})


_KNOWN = (KafkaError, BrokerUnreachable, TopicProblem, StageFailed)


def run_kafka(settings: Settings) -> int:
    """`python -m pipeline run` without --from: the Kafka stream processor."""
    from .._metrics import configure_logging

    configure_logging(settings.log_level)
    # aiokafka's own warnings (coordinator moves, retries) go out as the same JSON lines.
    ours, theirs = logging.getLogger("pipeline"), logging.getLogger("aiokafka")
    theirs.handlers[:] = ours.handlers
    theirs.setLevel(logging.WARNING)
    theirs.propagate = False
    theirs.addFilter(RateLimit())
    parse_routes(settings.topic_map)
    if settings.workers > 1:
        return run_workers(settings)
    try:
        anyio.run(serve, settings, backend="asyncio", backend_options={"use_uvloop": True})
    except (*_KNOWN, BaseExceptionGroup) as exc:
        # Task groups wrap what their tasks raise; Kafka errors are reported, anything else is
        # a bug and keeps its traceback.
        if isinstance(exc, BaseExceptionGroup):
            known, rest = exc.split(_KNOWN)
            if rest is not None or known is None:
                raise
            while isinstance(known, BaseExceptionGroup):
                known = known.exceptions[0]
            exc = known
        if isinstance(exc, (BrokerUnreachable, TopicProblem, StageFailed)):
            print(f"error: {exc}", file=sys.stderr)
        log.error("kafka error", extra={"error": repr(exc)})
        # A missing topic or a deployment the topology refuses is a setting to fix (exit 2).
        return 2 if isinstance(exc, (TopicProblem, SettingProblem)) else 1
    return 0
