"""The benchmark run: broker, corpus, each contender in turn, perf tools, report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e.bars import CORE_BATCH, CoreAlone, bar_lines, client_lines, core_alone
from benchmarks.e2e.config import CONTENDERS, FULL, OURS, PARTITIONS, QUICK
from benchmarks.e2e.contenders import Bench, Result
from benchmarks.e2e.expected import prepare
from benchmarks.e2e.kafka_io import create_topics, delete_topics, load_topic
from benchmarks.e2e.kafka_tools import perf_tests
from benchmarks.e2e.profile import profile_ours
from benchmarks.e2e.report import LAST_RUN, latency_table, setup_lines, table


def run(
    quick: bool,
    *,
    receipts: int | None = None,
    latency_s: float | None = None,
    latency_fractions: Sequence[float] = (),
    keep: bool = False,
    perf: bool = True,
    ours_args: Sequence[str] = (),
    out: Any = None,
    profile: bool = False,
    contenders: Sequence[str] = CONTENDERS,
) -> dict[str, float]:
    """Run the benchmark, print its report, return the figures (`ok` is 1.0 or 0.0)."""
    stream = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=stream, flush=True)

    from tools.broker import LocalKafka, kafka_bootstrap_from_env

    size = (QUICK if quick else FULL).copy()
    if receipts:
        size["receipts"] = receipts
    if latency_s is not None:
        size["latency_s"] = latency_s
    if latency_fractions:
        size["latency_fractions"] = tuple(latency_fractions)
    began = time.perf_counter()
    say("== end-to-end benchmark: raw topic → contender → output topic, local broker ==")
    external = kafka_bootstrap_from_env()
    broker = None
    if external:
        bootstrap = external
    else:
        broker = LocalKafka()
        bootstrap = broker.start()
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="e2e-bench-"))
    try:
        broker_s = time.perf_counter() - began
        bench = Bench(size, say, workdir, bootstrap, run_id)
        bench.ours_args = list(ours_args)
        start_ms = bench.started_ms - 7_800_000
        placed, expected, lat, notes = prepare(
            size["receipts"], size["latency_cap"], bench.raw, start_ms, cross_check=not quick
        )
        prepare_s = time.perf_counter() - began - broker_s
        for name, records in (("pool", expected.pool), ("state_pool", expected.state_pool)):
            (workdir / f"{name}.json").write_bytes(
                json.dumps(
                    [
                        [k.decode(), v.decode(), [[n, hv.decode()] for n, hv in h]]
                        for k, v, h in records
                    ]
                ).encode()
            )
        setup = setup_lines(bootstrap, bool(external), expected, placed, lat, start_ms)
        for line in setup:
            say(line)
        say(
            f"expected    {expected.events} events (mean value {expected.mean_value:.0f} B, "
            f"record {expected.mean_record:.0f} B with key and headers), {expected.dead} dead "
            f"letters (our core, generation order; corpus generated in {prepare_s:.1f}s)"
        )
        for note in notes:
            say(f"            {note}")
        asyncio.run(create_topics(bootstrap, [(bench.raw, PARTITIONS, {"retention.ms": "-1"})]))
        load_s = asyncio.run(load_topic(bootstrap, bench.raw, placed))
        say(f"load        {len(placed)} records in {load_s:.2f}s; broker ready in {broker_s:.1f}s")
        say(
            f"method      each contender: fresh group + output topic (LogAppendTime); phase 1 "
            f"drains the raw topic (receipts/s from first consumed batch to last output append);"
            f" then the stream goes on to a LogAppendTime topic it also reads, at "
            f"{', '.join(f'{f:.0%}' for f in size['latency_fractions'])} of that rate for "
            f"{size['latency_s']:.0f}s each (latency = output append − input append)"
        )
        say()
        results: list[Result] = []
        for name in contenders:
            res = asyncio.run(bench.contender(name, placed, expected, lat))
            results.append(res)
            say(
                f"  {name:<14} {res.receipts_per_s:>10,.0f} receipts/s  wall {res.wall_s:.2f}s  "
                f"correct={'yes' if res.correct else 'NO'}  "
                + "  ".join(f"p99@{p.fraction:.0%} {p.p99_ms:.0f} ms" for p in res.phases)
                + "  "
                f"({'; '.join(res.notes)})"
            )
        ceiling = {} if quick or not perf else perf_tests(bootstrap, expected, workdir, run_id, say)
        by = {r.name: r for r in results}
        ours_names = [n for n in by if n in OURS]
        best_ours = max((by[n].receipts_per_s for n in ours_names), default=0.0)
        ours1 = by["ours x1"].receipts_per_s if "ours x1" in by else best_ours
        relay = by["relay"].receipts_per_s if "relay" in by else 0.0
        peer = by["quix"].receipts_per_s if "quix" in by else 0.0
        say()
        say("throughput (phase 1: drain the preloaded raw topic)")
        for line in table(results, ours1):
            say(line)
        say(
            "  receipts/s = phase-1 receipts / (last output append − first consumed batch); cpu s:"
            " user+sys of the process tree over that span; runq s: time its threads were"
            " runnable but waiting for a CPU (schedstat); cpu total: whole life (wait4); peak"
            " RSS: sum of VmHWM over the process tree"
        )
        say()
        say("latency (phases 2+: the stream goes on at a fraction of the contender's phase-1 rate)")
        for line in latency_table(results):
            say(line)
        say(
            "  latency = output append time − input append time (both LogAppendTime); a p50 that"
            " grows from the first to the last fifth means the contender could not keep up"
        )
        if ceiling:
            say()
            say(
                f"kafka perf tools, {expected.events} records from the real output payloads "
                f"(~{expected.mean_value:.0f} B), acks=all, idempotent, lz4, linger 20 ms, "
                f"1 MiB batches, {PARTITIONS} partitions:"
            )
            if "kafka_producer_records_per_s" in ceiling:
                say(
                    f"  ProducerPerformance  {ceiling['kafka_producer_records_per_s']:>12,.0f} "
                    f"records/s  {ceiling['kafka_producer_mb_per_s']:.1f} MB/s  "
                    f"avg latency {ceiling['kafka_producer_avg_latency_ms']:.0f} ms"
                )
            if "kafka_consumer_records_per_s" in ceiling:
                say(
                    f"  ConsumerPerformance  {ceiling['kafka_consumer_records_per_s']:>12,.0f} "
                    f"records/s  {ceiling['kafka_consumer_mb_per_s']:.1f} MB/s  "
                    f"(fetch only: {ceiling['kafka_consumer_fetch_records_per_s']:,.0f} records/s)"
                )
            events_per_receipt = expected.events / expected.receipts
            if "kafka_producer_records_per_s" in ceiling:
                say(
                    f"  as receipts/s (at {events_per_receipt:.3f} events per receipt): producer "
                    f"alone {ceiling['kafka_producer_records_per_s'] / events_per_receipt:,.0f}"
                )
        core: CoreAlone | None = None
        if {"single", "single no-state"} & by.keys() and "relay" in by:
            core = core_alone(placed, expected.receipts)
            say()
            say(
                f"core alone  {core.us:.1f} CPU µs per receipt ({core.states_us:.1f} with its "
                f"state records): the same phase-1 records through Core.process in this process, "
                f"batches of {CORE_BATCH}, best of 3"
            )
        bars = bar_lines(results, core)
        if bars:
            say()
            say("bars (CPU µs per receipt of the process tree; p99 from the latency phases)")
            for line in bars:
                say(line)
        client = client_lines(results)
        if client:
            say()
            say("the bare client's own cost (CPU µs per receipt, differences in this run)")
            for line in client:
                say(line)
        profiles: dict[str, dict[str, float]] = {}
        if profile:
            profiles = profile_ours(bench, placed, expected, lat, say, results)
        ok = all(r.correct for r in results)
        result: dict[str, float] = {
            "receipts": float(expected.receipts),
            "receipts_per_s": best_ours,
            "ours_1_worker_receipts_per_s": ours1,
            "relay_ratio": best_ours / relay if relay else 0.0,
            "peer_ratio": best_ours / peer if peer else 0.0,
            "ok": 1.0 if ok else 0.0,
        }
        for r in results:
            slug = r.name.replace(" ", "_")
            result[f"{slug}_receipts_per_s"] = r.receipts_per_s
            for p in r.phases:
                result[f"{slug}_p99_ms_at_{round(p.fraction * 100)}pct"] = p.p99_ms
            result[f"{slug}_cpu_s"] = r.cpu_drain_s
            result[f"{slug}_peak_rss_mb"] = r.peak_rss_mb
        result.update(ceiling)
        if core is not None:
            result["core_alone_us"] = core.us
            result["core_alone_states_us"] = core.states_us
        for name, stages in profiles.items():
            slug = name.replace(" ", "_")
            result.update({f"profile_{slug}_{k}_us": v for k, v in stages.items()})
        say()
        wrong = ", ".join(r.name for r in results if not r.correct)
        load = os.getloadavg()
        say(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        say(
            f"e2e took {time.perf_counter() - began:.0f}s; outputs "
            f"{'all correct' if ok else 'INCORRECT: ' + wrong}"
        )
        say(
            f"e2e receipts_per_s={best_ours:.0f} relay_ratio={result['relay_ratio']:.2f} "
            f"peer_ratio={result['peer_ratio']:.2f}"
        )
        LAST_RUN.clear()
        LAST_RUN.update(
            {
                "results": results,
                "perf": ceiling,
                "expected": expected,
                "setup": setup,
                "size": size,
                "placed": len(placed),
                "bootstrap": bootstrap,
                "external": bool(external),
                "profile": profiles,
            }
        )
        if external:
            with contextlib.suppress(Exception):
                asyncio.run(delete_topics(bootstrap, [*bench.topics, f"e2e-{run_id}-perf"]))
        return result
    finally:
        if keep:
            say(f"kept the contenders' logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if broker is not None:
            broker.stop()


class Tee:
    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()
