"""The public face of the Kafka layer: run one process's stages (or N worker processes)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import anyio
from aiokafka.errors import KafkaError

from ..config import Settings, core_config, final_timeouts, state_topic
from ..core import Core, CoreStats, Lifecycle, Timeouts, parse_routes
from ..errors import PipelineError, SettingProblem, exit_code
from ..kafka import (
    Sink,
    close_now,
    group_refused,
    install,
    new_producer,
    new_restorer,
    start_with_retry,
)
from ..ops import (
    Health,
    LifecycleView,
    StatsView,
    WindowView,
    configure_logging,
    consumer_lag,
    observe_kafka,
    serve_http,
    serve_unix,
    tune_collector,
)
from ..state import Window
from ._dedupe import DedupeStage
from ._route import RouteStage, repartition_topic
from ._single import SingleStage
from ._stage import Stage
from ._startup import co_partitioning_broken, prepare
from ._workers import run_workers

log = logging.getLogger("pipeline.kafka")

#: How often topology `partitioned` looks at the partition counts it depends on.
WATCH_INTERVAL_S = 2.0

#: Exit code of a stop that gave up (`shutdown_timeout_s`) with work in hand uncommitted.
EXIT_UNCOMMITTED: Final = 3

#: What each client still gets to close once the stop's bound is spent (it only closes sockets).
CLOSE_GRACE_S: Final = 1.0


class Processor:
    """Everything one process runs: topology `single` (one stage) or `partitioned` (route and
    dedupe, sharing one producer)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = anyio.Event()
        install()  # records aiokafka cannot parse become dead letters (see _fetch.py)
        self.restorer = new_restorer(settings)
        config = core_config(settings)
        single = settings.topology == "single"
        keep_states = state_topic(settings) is not None
        self.core: Core[Window]
        if single:
            window = Window(
                settings.window_max_messages, settings.window_ttl_s * 1000, lifecycle=keep_states
            )
            lifecycle = (
                Lifecycle(window, Timeouts(*final_timeouts(settings), window.max_messages))
                if keep_states
                else None
            )
            self.core = Core(window, config, lifecycle=lifecycle)
        else:
            self.core = Core(None, config)
        self.sink = Sink(
            lambda batch_bytes: new_producer(settings, batch_bytes),
            settings.dead_letter_topic,
            self.core.stats,
            settings.output_topic,
            settings.compression,
        )
        self.stages: list[Stage] = []
        self.partitions = 0
        self.health = Health(settings.liveness_timeout_s)
        self.on_commit: Callable[[Sequence[float], float], None] | None = None
        #: When the stop must be over (set by the first stop request); every wait of it ends then.
        self.stop_deadline: float | None = None
        #: The stop gave up on batches in hand: they stay uncommitted, for the next owner.
        self.uncommitted = False

    # What the metrics read at scrape time (pipeline.ops._metrics.Observed).
    def stats(self) -> list[StatsView]:
        dedupe = [s for s in self.stages if isinstance(s, DedupeStage)]
        return [self.core.stats if not dedupe else _Forwarded(self.core.stats, dedupe[0])]

    def windows(self) -> list[WindowView]:
        if self.core.window is not None:
            return [self.core.window]
        views: list[WindowView] = []
        for stage in self.stages:
            if isinstance(stage, DedupeStage):
                views += stage.windows.values()
                views.append(stage.dropped)
        return views

    def lifecycles(self) -> list[LifecycleView]:
        if self.core.lifecycle is not None:
            return [self.core.lifecycle.counters]
        return [s.lifecycle_counters for s in self.stages if isinstance(s, DedupeStage)]

    def lag(self) -> Iterator[tuple[str, int, int]]:
        for stage in self.stages:
            yield from consumer_lag(stage.consumer, stage.positions)

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
        """Start the clients (each stage restores its windows once assigned)."""
        settings = self.settings
        await self.restorer.start()
        stopping = self.stopping
        if settings.topology == "single":
            single = SingleStage(settings, self.core, self.sink, self.restorer, stopping)
            self.stages = [single]
            self._observe()
            single.subscribe()
            await start_with_retry(single.consumer, "consumer", settings)
            return
        route = RouteStage(settings, self.core, self.sink, stopping)
        dedupe = DedupeStage(settings, self.sink, self.restorer, self.partitions, stopping)
        self.stages = [route, dedupe]
        self._observe()
        dedupe.subscribe()
        await start_with_retry(dedupe.consumer, "dedupe consumer", settings)
        route.subscribe()
        await start_with_retry(route.consumer, "route consumer", settings)

    def _observe(self) -> None:
        for stage in self.stages:
            stage.health = self.health
            stage.on_commit = self.on_commit
            self.health.set_ready(False, stage.name)

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
            # Each stage finishes its batches in hand (their acks arrive in time), commits them
            # and returns; the watcher has nothing to do.
            with anyio.move_on_after(self.remaining()):
                while any(s.in_hand() for s in self.stages):
                    await anyio.sleep(0.05)
            self.uncommitted = any(s.in_hand() for s in self.stages)
            tg.cancel_scope.cancel()
        self.raise_failure()

    def remaining(self) -> float:
        """Seconds left of the stop's bound (it starts at the first call)."""
        now = anyio.current_time()
        if self.stop_deadline is None:
            self.stop_deadline = now + self.settings.shutdown_timeout_s
        return max(0.0, self.stop_deadline - now)

    def raise_failure(self) -> None:
        for stage in self.stages:
            stage.raise_failure()

    async def stop(self) -> None:
        # Order matters: leave the groups (commits are already done), then flush the producer.
        # Each is stopped even if another fails (or was never started: a stop during start-up);
        # one that does not finish within the bound (the broker is gone) has its sockets closed.
        for stage in self.stages:
            with anyio.move_on_after(self.remaining()) as bound:
                try:
                    await stage.close()
                except Exception as exc:
                    log.warning("close failed", extra={"stage": stage.name, "error": repr(exc)})
            if bound.cancelled_caught:
                log.warning("close timed out", extra={"stage": stage.name})
        clients: list[Any] = [s.consumer for s in self.stages]
        clients += [self.restorer.consumer, self.sink.producer]
        for client in clients:
            if client is None:
                continue
            what = type(client).__name__
            stopped = False
            with anyio.move_on_after(max(self.remaining(), CLOSE_GRACE_S)) as bound:
                try:
                    await client.stop()
                    stopped = True
                except Exception as exc:
                    log.warning("stop failed", extra={"client": what, "error": repr(exc)})
                except asyncio.CancelledError:
                    if bound.cancel_called:
                        raise
                    # aiokafka's fetcher re-raises the cancellation of its own fetch tasks.
                    log.warning("stop cut short", extra={"client": what})
            if bound.cancelled_caught:
                log.warning("stop timed out", extra={"client": what})
            if not stopped:
                await close_now(client)

    @property
    def batches(self) -> int:
        return sum(s.batches for s in self.stages)


class _Forwarded:
    """The route stage's counters, with the events out that the dedupe stage forwarded (the
    route's core counts every event, before dedupe)."""

    def __init__(self, stats: CoreStats, dedupe: DedupeStage) -> None:
        self._stats, self._dedupe = stats, dedupe
        self.records_in, self.receipts_in = stats.records_in, stats.receipts_in
        self.dead_letters, self.skipped = stats.dead_letters, stats.skipped
        self.events_refused = stats.events_refused

    @property
    def unmapped_statuses(self) -> Mapping[str, int]:
        return self._stats.unmapped_statuses

    @property
    def unparsed_times(self) -> Mapping[str, int]:
        return self._stats.unparsed_times

    @property
    def events_out(self) -> Mapping[tuple[str, str], int]:
        return self._dedupe.events_out()


async def _watch_signals(processor: Processor, startup: anyio.CancelScope) -> None:
    """First SIGTERM/SIGINT: finish the batches in hand and stop. During start-up (waiting for the
    broker, rebuilding the window) there is no batch: start-up is abandoned at once."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            processor.stopping.set()
            startup.cancel()
            return


async def serve(settings: Settings, metrics_socket: str | None = None) -> int:
    """Run one process's stages until SIGTERM/SIGINT; the batches in hand are committed if
    their acks arrive within `shutdown_timeout_s`. Returns the exit code: 0, or
    EXIT_UNCOMMITTED when the stop gave up on batches in hand.

    The metrics endpoint (`--metrics-port`, or the worker's `metrics_socket`) answers from
    the start: /livez and /readyz are what an orchestrator asks during a long start-up.
    """
    processor = Processor(settings)
    metrics = observe_kafka(processor, processor.health)
    processor.on_commit = metrics.on_commit
    processor.restorer.on_restore = metrics.on_restore
    with contextlib.ExitStack() as endpoint:
        if metrics_socket is not None:
            endpoint.enter_context(serve_unix(metrics.registry, metrics_socket))
        elif settings.metrics_port is not None:
            port = endpoint.enter_context(
                serve_http(
                    metrics.registry, processor.health, settings.metrics_host, settings.metrics_port
                )
            )
            log.info("metrics served", extra={"host": settings.metrics_host, "port": port})
        try:
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as startup:
                    tg.start_soon(_watch_signals, processor, startup)
                    await processor.start()
                processor.raise_failure()  # a stage may have failed during start-up
                if not processor.stopping.is_set():
                    await processor.run()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await processor.stop()
    if processor.uncommitted:
        log.error(
            "stop gave up, work left uncommitted",
            extra={
                "shutdown_timeout_s": settings.shutdown_timeout_s,
                "exit_code": EXIT_UNCOMMITTED,
                "batches": processor.batches,
            },
        )
        return EXIT_UNCOMMITTED
    log.info("stopped", extra={"batches": processor.batches})
    return 0


_KNOWN = (KafkaError, PipelineError)


def run_kafka(settings: Settings, metrics_socket: str | None = None) -> int:
    """`python -m pipeline run` without --from: the Kafka stream processor (a worker of
    `--workers N` serves its metrics on `metrics_socket`, for the parent's endpoint)."""
    # aiokafka's own warnings (coordinator moves, retries) go out as the same JSON lines.
    configure_logging(settings.log_level)
    parse_routes(settings.topic_map)
    if settings.workers > 1:
        return run_workers(settings, run_kafka)
    tune_collector()
    try:
        return anyio.run(
            functools.partial(serve, settings, metrics_socket=metrics_socket),
            backend="asyncio",
            backend_options={"use_uvloop": True},
        )
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
        exc = group_refused(exc) or exc
        # One line, once: the message names what to fix; its class says whose fix it is.
        text = str(exc) if isinstance(exc, PipelineError) else f"Kafka: {exc!r}"
        print(f"error: {text}", file=sys.stderr)
        return exit_code(exc)
