"""Topologies end to end: `single` vs `partitioned`, and `partitioned` with 1, 2, 3 workers.

Usage: ``.venv/bin/python benchmarks/topology_bench.py [--quick] [--receipts N]``

Every run is the e2e harness (benchmarks/e2e/harness.py: same corpus and seed, fresh group and
output topic, outputs verified against our core) with contender ``ours x1`` and the arguments
``--topology T --workers N``, on one local broker shared by all runs (or
``KAFKA_BOOTSTRAP_SERVERS``). Phase 1 drains the preloaded raw topic (receipts/s, CPU µs per
receipt of the whole process tree); phase 2 goes on at 50 % of that rate (p99 latency, input
append → output append). Per-instance CPU and peak RSS are the tree's divided by N (the parent
of ``--workers`` is idle). Exits 1 if any run's output is wrong.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.e2e import harness  # noqa: E402
from benchmarks.e2e.report import LAST_RUN  # noqa: E402
from tools.broker import LocalKafka, kafka_bootstrap_from_env  # noqa: E402

RUNS = (("single", 1), ("partitioned", 1), ("partitioned", 2), ("partitioned", 3))


def run(quick: bool, receipts: int | None = None) -> dict[str, float]:
    broker = None
    if not kafka_bootstrap_from_env():
        broker = LocalKafka()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.start()
    figures: dict[str, float] = {"ok": 1.0}
    rows = []
    try:
        for topology, workers in RUNS:
            log = io.StringIO()
            got = harness.run(
                quick,
                receipts=receipts,
                latency_fractions=(0.5,),
                perf=False,
                ours_args=["--topology", topology, "--workers", str(workers)],
                contenders=("ours x1",),
                out=log,
            )
            (res,) = LAST_RUN["results"]
            slug = f"{topology}_x{workers}"
            p99 = res.phase(0.5).p99_ms if res.phase(0.5) else float("nan")
            figures[f"{slug}_receipts_per_s"] = res.receipts_per_s
            figures[f"{slug}_cpu_us_per_receipt"] = res.cpu_us_per_receipt
            figures[f"{slug}_p99_ms_at_50pct"] = p99
            figures[f"{slug}_cpu_s_per_instance"] = res.cpu_drain_s / workers
            figures[f"{slug}_peak_rss_mb_per_instance"] = res.peak_rss_mb / workers
            if not got["ok"]:
                figures["ok"] = 0.0
                print(log.getvalue(), file=sys.stderr)
            rows.append(
                f"{topology:<12} x{workers}  {res.receipts_per_s:>10,.0f} receipts/s  "
                f"{res.cpu_us_per_receipt:>6.1f} CPU µs/receipt  "
                f"{res.cpu_drain_s / workers:>6.2f} CPU s/instance  "
                f"{res.peak_rss_mb / workers:>6.0f} MB RSS/instance  p99@50% {p99:>6.0f} ms  "
                f"correct={'yes' if res.correct else 'NO'}"
            )
            print(rows[-1], flush=True)
    finally:
        if broker is not None:
            broker.stop()
            os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--receipts", type=int)
    args = parser.parse_args()
    figures = run(args.quick, args.receipts)
    print(" ".join(f"{k}={v:.1f}" for k, v in figures.items()))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
