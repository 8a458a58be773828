"""`python -m pipeline ingress`: the producer, then uvicorn (httptools) on a socket we bind, until
SIGTERM/SIGINT; then stop accepting, finish the requests in flight, flush, exit 0.

uvicorn with httptools was chosen by measurement over granian (benchmarks/RESULTS.md, Ingress):
at the same request rate it spent half the CPU per request here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator

import uvicorn

from ..errors import ConfigError, PipelineError
from ..ops import configure_logging
from ._app import Ingress
from ._metrics import IngressMetrics
from ._producer import Writer
from ._routes import PROVIDERS
from ._settings import IngressSettings, check_settings

log = logging.getLogger("pipeline.ingress")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Ours are installed on the loop (see serve); uvicorn's would re-raise the signal after
        # its shutdown and kill the process before the producer is flushed.
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def server_config(app: Ingress, settings: IngressSettings) -> uvicorn.Config:
    """The server's settings (the benchmark's bare ceiling runs the same)."""
    return uvicorn.Config(
        app,
        http="httptools",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        # A backstop above ours: connections past it get uvicorn's own 503.
        limit_concurrency=settings.max_in_flight * 2 + 100,
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
    )


async def serve(settings: IngressSettings) -> int:
    metrics = IngressMetrics()
    writer = Writer(settings, on_batch=metrics.batch_records.observe)
    # A PipelineError goes up to the command line, which prints it and exits with its code.
    try:
        await writer.start()
    except PipelineError:
        await writer.producer.stop()
        raise
    app = Ingress(settings, writer, metrics)
    server = _Server(server_config(app, settings))
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        await writer.stop(settings.shutdown_timeout_s)
        raise ConfigError(
            f"invalid setting port: cannot listen on {settings.host}:{settings.port}: "
            f"{exc.strerror}"
        ) from None
    loop = asyncio.get_running_loop()
    stop_at: list[float] = []  # when the first stop signal came

    def stop() -> None:
        stop_at[:] = stop_at or [loop.time()]
        server.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    port = sock.getsockname()[1]
    log.info(
        "ingress listening",
        extra={"host": settings.host, "port": port, "tls": settings.tls_certfile is not None},
    )
    try:
        await server.serve(sockets=[sock])
    finally:
        log.info("ingress stopping: flushing the producer", extra={"in_flight": app.in_flight})
        # One bound for the whole stop, from the signal: the requests in flight, then the flush.
        started = stop_at[0] if stop_at else loop.time()
        left = max(0.1, started + settings.shutdown_timeout_s - loop.time())
        if not await writer.stop(left):
            log.warning(
                "the broker did not answer before the stop's bound: bodies it had not "
                "acknowledged were answered 503, not received",
                extra={"shutdown_timeout_s": settings.shutdown_timeout_s},
            )
    log.info("ingress stopped")
    return 0


def run_ingress(settings: IngressSettings) -> int:
    check_settings(settings, PROVIDERS)
    configure_logging(settings.log_level)  # aiokafka's too, rate-limited
    ours = logging.getLogger("pipeline")
    theirs = logging.getLogger("uvicorn")
    theirs.handlers = list(ours.handlers)
    theirs.setLevel(logging.WARNING)
    theirs.propagate = False
    import uvloop

    return uvloop.run(serve(settings))
