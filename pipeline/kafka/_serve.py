"""The public face of the Kafka layer: run one processor (or N worker processes) until stopped."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import anyio
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas import PROVIDERS

from .._config import Settings, core_config
from .._metrics import Registry, serve_metrics, standard_metrics
from ..core._batch import Core, parse_routes
from ..core._window import Window
from ._clients import BrokerUnreachable
from ._logs import RateLimit
from ._single import Processor
from ._topics import TopicProblem
from ._workers import run_workers

log = logging.getLogger("pipeline.kafka")


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
    """Export the counters the core and window already keep (read at scrape time, not per item)."""
    m = standard_metrics(registry)
    stats, window = processor.core.stats, processor.core.window
    m.records_in.attach(lambda: stats.records_in)
    m.receipts_in.attach(lambda: stats.receipts_in)
    m.events_out.attach(lambda: stats.events_out)
    m.dead_letters.attach(lambda: stats.dead_letters)
    m.skipped.attach(lambda: stats.skipped)
    m.unmapped_status.attach(lambda: stats.unmapped_statuses)
    m.duplicates.attach(lambda: dict(zip(PROVIDERS, window.counters.duplicates, strict=True)))
    m.stale.attach(lambda: dict(zip(PROVIDERS, window.counters.stale, strict=True)))
    m.window_evicted_by_count.attach(
        lambda: dict(zip(PROVIDERS, window.counters.evicted_by_count, strict=True))
    )
    m.window_expired.attach(lambda: dict(zip(PROVIDERS, window.counters.expired, strict=True)))
    m.window_messages.attach(lambda: {(): len(window)})
    consumer = processor.consumer

    def lag() -> dict[tuple[str, str], float]:
        result = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = processor.positions.get(tp)
            if high is not None and position is not None:
                result[tp.topic, str(tp.partition)] = max(0, high - position)
        return result

    m.consumer_lag.attach(lag)

    def on_batch(batch_s: float, commit_s: float, offsets: dict[TopicPartition, int]) -> None:
        m.batch_seconds.observe(batch_s)
        m.commit_seconds.observe(commit_s)
        m.batches.inc()

    processor.on_batch = on_batch


async def serve(
    settings: Settings, started: Callable[[Processor, int | None], Awaitable[None]] | None = None
) -> None:
    """Run one processor until SIGTERM/SIGINT; the batch in hand is finished and committed."""
    window = Window(settings.window_max_messages, settings.window_ttl_s * 1000)
    core = Core(window, core_config(settings))
    processor = Processor(settings, core)
    try:
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as startup:
                tg.start_soon(_watch_signals, processor, startup)
                await processor.start()
            if processor.stopping.is_set():
                tg.cancel_scope.cancel()
                return
            tg.start_soon(processor.follower.follow, processor.shares_inputs)
            port = None
            if settings.metrics_port is not None:
                registry = Registry()
                attach_metrics(registry, processor)
                port = await tg.start(serve_metrics, registry, settings.metrics_port)
                log.info("metrics served", extra={"port": port})
            if started is not None:
                await started(processor, port)
            await processor.run()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await processor.stop()
    log.info("stopped", extra={"batches": processor.batches})


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
    except (KafkaError, BrokerUnreachable, TopicProblem, BaseExceptionGroup) as exc:
        # Task groups wrap what their tasks raise; Kafka errors are reported, anything else is
        # a bug and keeps its traceback.
        if isinstance(exc, BaseExceptionGroup):
            known, rest = exc.split((KafkaError, BrokerUnreachable, TopicProblem))
            if rest is not None or known is None:
                raise
            exc = known.exceptions[0]
        if isinstance(exc, (BrokerUnreachable, TopicProblem)):
            print(f"error: {exc}", file=sys.stderr)
        log.error("kafka error", extra={"error": repr(exc)})
        # A missing or forbidden topic is a setting to fix (exit 2, as for bad config).
        return 2 if isinstance(exc, TopicProblem) else 1
    return 0
