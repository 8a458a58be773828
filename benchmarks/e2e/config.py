"""Settings of the end-to-end benchmark: partitions, modes, contenders, versions."""

from __future__ import annotations

import contextlib
import platform
import sys
from pathlib import Path
from typing import TypedDict

PARTITIONS = 4
#: Provider → raw partition (balanced by receipts: tencent 25 %, ultiroam 22 %, uspeedo 21 %,
#: yunpian 17 % + smspartner 15 %). Unrecognisable bodies are spread by offset.
PROVIDER_PARTITION = {"tencent": 0, "ultiroam": 1, "uspeedo": 2, "yunpian": 3, "smspartner": 3}


class Size(TypedDict):
    """How big a run is (FULL or QUICK, with the command line's overrides)."""

    latency_fractions: tuple[float, ...]
    receipts: int
    latency_s: float
    latency_cap: int
    settle_s: float
    drain_timeout_s: float


FULL: Size = {
    "latency_fractions": (0.5, 0.25),
    "receipts": 200_000,
    "latency_s": 8.0,
    "latency_cap": 400_000,
    "settle_s": 0.5,
    "drain_timeout_s": 300.0,
}
QUICK: Size = {
    "latency_fractions": (0.5,),
    "receipts": 20_000,
    "latency_s": 1.0,
    "latency_cap": 25_000,
    "settle_s": 0.25,
    "drain_timeout_s": 40.0,
}
#: Our processor as a contender: the flags each adds to the shipped defaults (topology
#: partitioned, --max-batches-in-flight 2, the state topic on). `d1`: one batch at a time, acks
#: awaited before the next; `no-state`: --no-state.
OURS = {
    "ours x1": (),
    "ours x2": ("--workers", "2"),
    "single": ("--topology", "single"),
    "single d1": ("--topology", "single", "--max-batches-in-flight", "1"),
    "partitioned": ("--topology", "partitioned"),
    "partitioned d1": ("--topology", "partitioned", "--max-batches-in-flight", "1"),
    # The state topic off (it is on by default): its cost, side by side in one run.
    "ours x1 no-state": ("--no-state",),
    "single no-state": ("--topology", "single", "--no-state"),
    "ours x2 no-state": ("--workers", "2", "--no-state"),
}
#: The bare relay with the processor's producer settings (zstd, no linger), with those it had
#: before they changed (lz4, which aiokafka runs at level 9, and a 20 ms linger), writing a real
#: state record beside each output (`relay state`: the state topic's writes alone), and through
#: a topic it reads back (`relay hop`: topology partitioned's Kafka work alone).
RELAYS = {
    "relay": (),
    "relay lz4": ("--compression", "lz4", "--linger-ms", "20"),
    "relay state": (),
    "relay hop": (),
}
#: The relays that also write the state topic, and those that hop through a topic of their own.
STATE_RELAYS = frozenset({"relay state"})
HOP_RELAYS = frozenset({"relay hop"})
#: Every contender there is, and those of a run that names none.
CHOICES = (*OURS, *RELAYS, "baseline", "quix")
CONTENDERS = ("ours x1", "ours x2", "relay", "baseline", "quix")
SEED, LATENCY_SEED = 1, 2
BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
#: Set (by this benchmark) in the environment of our processor: the file where each process of
#: it appends the time of its group consumer's first non-empty batch.
FIRST_ENV = "E2E_BENCH_FIRST_FILE"
PYTHON = sys.executable


def package_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"
