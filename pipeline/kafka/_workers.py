"""`--workers N`: N processor processes in one consumer group, supervised by the parent."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from typing import Any

import msgspec

from .._config import Settings

log = logging.getLogger("pipeline.kafka")


def _worker(settings_data: dict[str, Any], parent: int) -> None:
    # Fix (issue 5, tests/integration/test_two_instances.py): a worker outlived a parent killed
    # with SIGKILL (or by the OOM killer) and went on consuming unsupervised; a restarted
    # parent then added its workers to the orphans. Linux sends this worker SIGTERM (a
    # graceful stop) when the parent dies; the getppid check covers a parent that died first.
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(0)
    from ._serve import run_kafka  # the parent's entry point, imported late: it imports us

    settings = msgspec.convert(settings_data, Settings)
    sys.exit(run_kafka(settings))


def run_workers(settings: Settings) -> int:
    """N processes in one consumer group; a signal stops them all, one failure stops the rest."""
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(settings.workers):
        data = msgspec.to_builtins(settings)
        data["workers"] = 1
        if settings.metrics_port:
            data["metrics_port"] = settings.metrics_port + i
        proc = ctx.Process(target=_worker, args=(data, os.getpid()), name=f"pipeline-worker-{i}")
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
