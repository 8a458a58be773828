"""The public face of the Kafka layer: run one processor (or N worker processes) until stopped."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import anyio
from aiokafka.errors import KafkaError

from .._config import Settings, core_config
from .._endpoint import serve_http, serve_unix
from .._logging import configure_logging
from .._metrics import observe_kafka
from ..core._batch import Core, parse_routes
from ..core._window import Window
from ._clients import BrokerUnreachable
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


async def serve(
    settings: Settings,
    started: Callable[[Processor, int | None], Awaitable[None]] | None = None,
    metrics_socket: str | None = None,
) -> None:
    """Run one processor until SIGTERM/SIGINT; the batch in hand is finished and committed.

    The metrics endpoint (`--metrics-port`, or the worker's `metrics_socket`) answers from
    the start: /livez and /readyz are what an orchestrator asks during a long start-up.
    """
    window = Window(settings.window_max_messages, settings.window_ttl_s * 1000)
    core = Core(window, core_config(settings))
    processor = Processor(settings, core)
    metrics = observe_kafka(processor, processor.health)
    processor.on_batch = metrics.on_batch
    with contextlib.ExitStack() as endpoint:
        port = None
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
                if processor.stopping.is_set():
                    tg.cancel_scope.cancel()
                    return
                tg.start_soon(processor.follower.follow, processor.shares_inputs)
                if started is not None:
                    await started(processor, port)
                await processor.run()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await processor.stop()
    log.info("stopped", extra={"batches": processor.batches})


def run_kafka(settings: Settings, metrics_socket: str | None = None) -> int:
    """`python -m pipeline run` without --from: the Kafka stream processor (a worker of
    `--workers N` serves its metrics on `metrics_socket`, for the parent's endpoint)."""
    # aiokafka's own warnings (coordinator moves, retries) go out as the same JSON lines.
    configure_logging(settings.log_level)
    parse_routes(settings.topic_map)
    if settings.workers > 1:
        return run_workers(settings)
    try:
        anyio.run(
            functools.partial(serve, settings, metrics_socket=metrics_socket),
            backend="asyncio",
            backend_options={"use_uvloop": True},
        )
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
