"""The CPU and latency bars of the default topology, checked on one run's results.

Each bar is checked only when the run has what it compares (the contenders it names); the state
topic is off for the topology bars (`no-state` contenders when present), as the bars are about
the topologies, and its own bar compares the same contender with it and without.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.e2e.contenders import Result

#: Batches of the in-process core run: the processor's default `--batch-max-records`.
CORE_BATCH = 2000


@dataclass
class CoreAlone:
    """CPU µs per phase-1 receipt of the core alone, in the harness's process (no Kafka)."""

    us: float
    states_us: float  # with the message lifecycle (a state record per emitted event)


def core_alone(records: Sequence[Any], receipts: int, reps: int = 3) -> CoreAlone:
    """The core over the phase-1 records in batches of CORE_BATCH, with and without its
    lifecycle (`core_bench.run_core`), repetitions interleaved, fresh window each, best CPU
    time of `reps`, under the collector schedule of the run command."""
    from benchmarks.core_bench import run_core
    from pipeline.ops import GEN0_THRESHOLD

    def once(states: bool) -> float:
        (_, cpu), _, _, _ = run_core(records, CORE_BATCH, keep=False, states=[] if states else None)
        return cpu

    thresholds = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, *thresholds[1:])
    try:
        once(True)  # warm: first-use caches (phone metadata, time zones) are not the figure
        runs = [(once(False), once(True)) for _ in range(reps)]
    finally:
        gc.set_threshold(*thresholds)
    per = 1e6 / max(1, receipts)
    return CoreAlone(min(r[0] for r in runs) * per, min(r[1] for r in runs) * per)


def _pick(by: dict[str, Result], *names: str) -> Result | None:
    return next((by[n] for n in names if n in by and by[n].correct), None)


def bar_lines(results: Sequence[Result], core: CoreAlone | None) -> list[str]:
    """One line per bar this run can check: the figures, the bar, met or not."""
    by = {r.name: r for r in results}
    single = _pick(by, "single no-state", "single")
    partitioned = _pick(by, "ours x1 no-state", "partitioned", "ours x1")
    relay, quix = _pick(by, "relay"), _pick(by, "quix")
    lines: list[str] = []

    def check(what: str, value: float, bar: float, unit: str, met: bool) -> None:
        digits = 2 if unit == "x" else 1  # ratios: 1.25 is not 1.2
        lines.append(
            f"  {what:<58}{value:>9.{digits}f} {unit:<4} bar {bar:>7.{digits}f}  "
            f"{'met' if met else 'NOT met'}"
        )

    def cpu(r: Result) -> float:
        return r.cpu_us_per_receipt

    if single and relay and core:
        bar = core.us + cpu(relay) + 1.0
        check(
            f"{single.name}: CPU µs ≤ core alone + relay + 1.0",
            cpu(single),
            bar,
            "µs",
            cpu(single) <= bar,
        )
    if single and partitioned and relay:
        bar = cpu(single) + cpu(relay) + 1.0
        check(
            f"{partitioned.name}: CPU µs ≤ {single.name} + relay + 1.0",
            cpu(partitioned),
            bar,
            "µs",
            cpu(partitioned) <= bar,
        )
    for r, times in ((partitioned, 1.25), (single, 1.5)):
        if r and quix:
            ratio = cpu(quix) / cpu(r) if cpu(r) else 0.0
            check(
                f"{r.name}: efficiency vs Quix Streams (CPU ratio) ≥ {times}",
                ratio,
                times,
                "x",
                ratio >= times,
            )
    limits = {"single": 100.0, "single no-state": 100.0}
    for r in results:
        phase = r.phase(0.5)
        if phase is None or r.name not in (
            *limits,
            "ours x1",
            "ours x2",
            "ours x1 no-state",
            "ours x2 no-state",
        ):
            continue
        bar = limits.get(r.name, 150.0)
        check(f"{r.name}: p99 ms at half load", phase.p99_ms, bar, "ms", phase.p99_ms <= bar)
    for on, off in (("ours x1", "ours x1 no-state"), ("single", "single no-state")):
        if on in by and off in by and by[on].correct and by[off].correct:
            ratio = by[off].receipts_per_s / by[on].receipts_per_s if by[on].receipts_per_s else 0.0
            check(
                f"{on}: throughput without state / with (≤ 1.10)", ratio, 1.10, "x", ratio <= 1.10
            )
    return lines


def client_lines(results: Sequence[Result]) -> list[str]:
    """What the bare client pays, beside what ours pays, for what the bars price: a second hop
    (`relay hop` − relay against `partitioned` − `single`) and the state topic's writes
    (`relay state` − relay, against `single` and `partitioned` without their state)."""
    by = {r.name: r for r in results}
    relay, hop, state = _pick(by, "relay"), _pick(by, "relay hop"), _pick(by, "relay state")
    single = _pick(by, "single no-state", "single")
    partitioned = _pick(by, "ours x1 no-state", "partitioned", "ours x1")
    lines: list[str] = []
    if relay is None:
        return lines
    base = relay.cpu_us_per_receipt
    if hop is not None:
        line = (
            f"  second hop: bare client (relay hop − relay) {hop.cpu_us_per_receipt - base:.1f} µs"
        )
        if single and partitioned:
            ours = partitioned.cpu_us_per_receipt - single.cpu_us_per_receipt
            line += f", ours ({partitioned.name} − {single.name}) {ours:.1f} µs"
        lines.append(line)
    if state is not None:
        writes = state.cpu_us_per_receipt - base
        line = f"  state writes: bare client (relay state − relay) {writes:.1f} µs"
        shares = [
            f"{100 * writes / r.cpu_us_per_receipt:.0f} % of {r.name}"
            for r in (single, partitioned)
            if r is not None and r.cpu_us_per_receipt
        ]
        lines.append(line + (f" ({', '.join(shares)})" if shares else ""))
    return lines
