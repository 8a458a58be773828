"""`--workers N`: N processor processes in one consumer group, supervised by the parent."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from ..config import Settings
from ..ops import serve_workers

log = logging.getLogger("pipeline.kafka")

#: What a worker runs: the processor's entry point, with its metrics socket.
Entry = Callable[[Settings, str | None], int]


def _worker(
    entry: Entry, settings_data: dict[str, Any], parent: int, metrics_socket: str | None
) -> None:
    # A worker must not outlive a parent killed with SIGKILL (or by the OOM killer): it would
    # go on consuming unsupervised, and a restarted parent would add its workers to the orphans
    # (tests/integration/test_two_instances.py). Linux sends this worker SIGTERM (a
    # graceful stop) when the parent dies; the getppid check covers a parent that died first.
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(0)
    settings = msgspec.convert(settings_data, Settings)
    sys.exit(entry(settings, metrics_socket))


def run_workers(settings: Settings, entry: Entry) -> int:
    """N processes in one consumer group, each running ``entry`` (a module-level function, so
    that the spawned process can import it); a signal stops them all, one failure stops the
    rest. With `--metrics-port`, the parent serves one endpoint with every worker's series."""
    with contextlib.ExitStack() as endpoint:
        sockets: list[str | None] = [None] * settings.workers
        if settings.metrics_port is not None:
            paths, port = endpoint.enter_context(
                serve_workers(settings.workers, settings.metrics_host, settings.metrics_port)
            )
            sockets[:] = paths
            log.info(
                "metrics served",
                extra={"host": settings.metrics_host, "port": port, "workers": settings.workers},
            )
        return _supervise(settings, entry, sockets)


def _supervise(settings: Settings, entry: Entry, sockets: list[str | None]) -> int:
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i, path in enumerate(sockets):
        data = msgspec.to_builtins(settings)
        data["workers"] = 1
        data["metrics_port"] = None
        args = (entry, data, os.getpid(), path)
        proc = ctx.Process(target=_worker, args=args, name=f"pipeline-worker-{i}")
        proc.start()
        procs.append(proc)

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while any(p.is_alive() for p in procs):
        for p in procs:
            p.join(timeout=0.2)
            if p.exitcode not in (None, 0) and code == 0:
                code = p.exitcode if p.exitcode > 0 else 1
                log.error("worker failed, stopping the others", extra={"worker": p.name})
                forward(signal.SIGTERM, None)
    return code
