"""The printed report, the same figures as a Markdown section, and the throughput chart.

Nothing here writes to benchmarks/RESULTS.md: `markdown_section` returns text for the caller to
print, and `draw_chart` writes only the image it is given.
"""

from __future__ import annotations

import os
import platform
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.e2e.config import (
    OURS,
    PARTITIONS,
    PYTHON,
    RELAYS,
    SEED,
    cpu_model,
    package_version,
)
from benchmarks.e2e.contenders import Result
from benchmarks.e2e.expected import Expected, LatencyCorpus
from benchmarks.e2e.profile import STAGES

# -- report ---------------------------------------------------------------------------------------


def table(results: list[Result], ours: float) -> list[str]:
    head = (
        f"  {'contender':<15}{'receipts/s':>12}{'vs ours':>8}{'wall s':>8}{'events':>9}"
        f"{'dead':>6}{'correct':>9}{'cpu s':>7}{'runq s':>7}{'cpu µs/rcpt':>12}"
        f"{'cpu total s':>12}{'peak RSS MB':>12}"
    )
    lines = [head]
    for r in results:
        per = r.cpu_us_per_receipt
        lines.append(
            f"  {r.name:<15}{r.receipts_per_s:>12,.0f}"
            f"{(r.receipts_per_s / ours if ours else 0):>8.2f}{r.wall_s:>8.2f}{r.outputs:>9}"
            f"{r.dead:>6}{'yes' if r.correct else 'NO':>9}{r.cpu_drain_s:>7.2f}"
            f"{r.runq_drain_s:>7.2f}{per:>12.1f}"
            f"{r.cpu_total_s:>12.2f}{r.peak_rss_mb:>12.0f}"
        )
    return lines


def latency_table(results: list[Result]) -> list[str]:
    head = (
        f"  {'contender':<15}{'load':>6}{'receipts/s':>12}{'seconds':>8}{'events':>8}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'p50 first→last fifth':>22}{'send lag ms':>12}"
    )
    lines = [head]
    for r in results:
        for p in r.phases:
            drift = f"{p.drift[0]:.0f} → {p.drift[1]:.0f}"
            lines.append(
                f"  {r.name:<15}{p.fraction:>6.0%}{p.rate:>12,.0f}{p.seconds:>8.1f}"
                f"{p.outputs:>8}{p.p50_ms:>8.0f}{p.p99_ms:>8.0f}{p.max_ms:>8.0f}"
                f"{drift:>22}{p.lag_ms:>12.0f}"
            )
    return lines


def setup_lines(
    bootstrap: str,
    external: bool,
    expected: Expected,
    placed: Sequence[Any],
    lat: LatencyCorpus,
    start_ms: int,
) -> list[str]:
    from tools.broker import KAFKA_VERSION

    v = package_version
    load = os.getloadavg()
    per_part = Counter(r.partition for r in placed)
    raw_bytes = sum(len(r.value) for r in placed)
    start = datetime.fromtimestamp(start_ms / 1000).astimezone().strftime("%H:%M:%S %Z")
    return [
        f"python      {platform.python_implementation()} {platform.python_version()} ({PYTHON})",
        f"libraries   aiokafka {v('aiokafka')}, uvloop {v('uvloop')}, msgspec {v('msgspec')}, "
        f"orjson {v('orjson')}, quixstreams {v('quixstreams')} "
        f"(confluent-kafka {v('confluent-kafka')})",
        f"kafka       {'external broker at ' + bootstrap if external else 'local KRaft broker '}"
        f"{'' if external else KAFKA_VERSION + ' (tools.broker.LocalKafka, 512 MiB heap)'}",
        f"machine     {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"({cpu_model()}), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"(broker, contender and harness share them)",
        f"corpus      benchmarks/corpus.py seed {SEED} from {start}: phase 1 = {expected.receipts} "
        f"receipts in {len(placed)} records ({raw_bytes / 1e6:.1f} MB), {expected.duplicates} "
        f"duplicate and {expected.stale} stale reports, {expected.dead} bodies dead-lettered; "
        f"phase 2 = the stream's continuation (up to {sum(lat.receipts)} receipts)",
        f"raw topic   {PARTITIONS} partitions by provider, uncompressed; records per partition "
        f"{dict(sorted(per_part.items()))}",
    ]


# -- Markdown section and chart --------------------------------------------------------------------

#: What the last `harness.run` measured, for `markdown_section` and `draw_chart`.
LAST_RUN: dict[str, Any] = {}


def markdown_section(console: str, argv: list[str], chart: str | None = None) -> str:
    """The last run as a Markdown `## End to end` section: setup, tables, the console report.

    `chart` is the file name of a chart drawn beside the results page (linked when given).
    """
    last = LAST_RUN
    results: list[Result] = last["results"]
    perf: dict[str, float] = last["perf"]
    expected: Expected = last["expected"]
    # As the console's table: against ours x1, else the best of ours in the run.
    ours = next((r.receipts_per_s for r in results if r.name == "ours x1"), 0.0) or max(
        (r.receipts_per_s for r in results if r.name in OURS), default=0.0
    )
    setup = {line[:12].strip(): line[12:].strip() for line in last["setup"]}
    lines = [
        "## End to end",
        "",
        "Raw bodies on a Kafka topic in, canonical events on an output topic out, through a local",
        "broker, each contender in its own process (benchmarks/e2e_bench.py explains the method",
        "in its docstring).",
        "",
        f"- Command: `.venv/bin/python benchmarks/e2e_bench.py {' '.join(argv)}`",
        f"- Machine: {setup.get('machine', '?')}",
        f"- Python: {setup.get('python', '?')}; {setup.get('libraries', '?')}",
        f"- Kafka: {setup.get('kafka', '?')}",
        f"- Corpus: {setup.get('corpus', '?')}",
        f"- Raw topic: {setup.get('raw topic', '?')}",
        f"- Expected output: {expected.events} events (mean value {expected.mean_value:.0f} B, "
        f"{expected.mean_record:.0f} B with key and headers), {expected.dead} dead letters",
        "",
        "Throughput (phase 1: each contender drains the preloaded raw topic with a fresh group):",
        "",
        "| contender | receipts/s | vs ours | wall s | events | correct | CPU s | run-queue s "
        "| CPU µs/receipt | peak RSS MB |",
        "|---|---:|---:|---:|---:|:-:|---:|---:|---:|---:|",
    ]
    for r in results:
        per = r.cpu_us_per_receipt
        lines.append(
            f"| {r.name} | {r.receipts_per_s:,.0f} | {r.receipts_per_s / ours if ours else 0:.2f} "
            f"| {r.wall_s:.2f} | {r.outputs} | {'yes' if r.correct else '**NO**'} "
            f"| {r.cpu_drain_s:.2f} | {r.runq_drain_s:.2f} | {per:.1f} | {r.peak_rss_mb:.0f} |"
        )
    lines += [
        "",
        "receipts/s = phase-1 receipts / (last output append − first consumed batch). CPU s: "
        "user+sys of the contender's process tree over that span; run-queue s: time its threads "
        "were runnable but waiting for a CPU (`/proc/*/task/*/schedstat`), i.e. what the shared "
        "machine took from it. Correct: every expected event exactly once (parsed JSON), nothing "
        "else, the expected dead letters; for the relay, the record count.",
        "",
        "Latency (phases 2+: the stream goes on, paced, at a fraction of the contender's own "
        "phase-1 rate; latency = output append time − input append time, both LogAppendTime):",
        "",
        "| contender | load | receipts/s | s | events | p50 ms | p99 ms | max ms "
        "| p50 first → last fifth |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in results:
        for p in r.phases:
            lines.append(
                f"| {r.name} | {p.fraction:.0%} | {p.rate:,.0f} | {p.seconds:.1f} | {p.outputs} "
                f"| {p.p50_ms:.0f} | {p.p99_ms:.0f} | {p.max_ms:.0f} "
                f"| {p.drift[0]:.0f} → {p.drift[1]:.0f} |"
            )
    if perf:
        lines += [
            "",
            f"Kafka's own tools on the same broker, {expected.events} records of the real output "
            f"payloads (~{expected.mean_value:.0f} B), acks=all, idempotent, lz4, linger 20 ms, "
            f"1 MiB batches, {PARTITIONS} partitions:",
            "",
            "| tool | records/s | MB/s |",
            "|---|---:|---:|",
        ]
        if "kafka_producer_records_per_s" in perf:
            lines.append(
                f"| ProducerPerformance (kafka-producer-perf-test) "
                f"| {perf['kafka_producer_records_per_s']:,.0f} "
                f"| {perf['kafka_producer_mb_per_s']:.1f} |"
            )
        if "kafka_consumer_records_per_s" in perf:
            lines.append(
                f"| ConsumerPerformance (kafka-consumer-perf-test) "
                f"| {perf['kafka_consumer_records_per_s']:,.0f} "
                f"| {perf['kafka_consumer_mb_per_s']:.1f} |"
            )
    profiles: dict[str, dict[str, float]] = last.get("profile") or {}
    if profiles:
        names = list(profiles)
        stages = [s for s in STAGES if any(s in p for p in profiles.values())]
        lines += [
            "",
            "Where each topology spends its CPU, in CPU µs per receipt (py-spy samples of one "
            "more phase-1 drain, sorted into stages by `classify_profile`, times the "
            "contender's own CPU µs per receipt):",
            "",
            "| stage | " + " | ".join(f"`{n}`" for n in names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        lines += [
            f"| {stage} | " + " | ".join(f"{profiles[n].get(stage, 0.0):.2f}" for n in names) + " |"
            for stage in stages
        ]
        lines.append(
            "| **total** | "
            + " | ".join(f"**{sum(profiles[n].values()):.2f}**" for n in names)
            + " |"
        )
    if chart:
        lines += ["", f"![receipts per second per contender]({chart})"]
    lines += [
        "",
        "<details><summary>Full console report</summary>",
        "",
        "```",
        console.rstrip(),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def draw_chart(
    results: list[Result], perf: dict[str, float], expected: Expected, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in results]
    values = [r.receipts_per_s for r in results]
    colors = ["#1f77b4" if n in OURS else "#7f7f7f" if n in RELAYS else "#ff7f0e" for n in names]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    bars = ax.bar(names, values, color=colors)
    for bar, value, r in zip(bars, values, results, strict=True):
        ax.annotate(
            f"{value:,.0f}" + ("" if r.correct else "\n(INCORRECT)"),
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    if "kafka_producer_records_per_s" in perf:
        ceiling = perf["kafka_producer_records_per_s"] * expected.receipts / expected.events
        ax.axhline(ceiling, color="#2ca02c", linestyle="--", linewidth=1)
        ax.annotate(
            f"broker: kafka-producer-perf-test ≙ {ceiling:,.0f} receipts/s",
            (len(names) - 0.5, ceiling),
            ha="right",
            va="bottom",
            fontsize=8,
            color="#2ca02c",
        )
    ax.set_ylabel("receipts per second")
    ax.set_title("End to end through a local Kafka broker (higher is better)")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylim(
        0,
        max([*values, 1]) * 1.25
        if "kafka_producer_records_per_s" not in perf
        else max([*values, ceiling, 1]) * 1.15,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
