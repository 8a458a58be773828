"""End-to-end benchmark: raw bodies on Kafka in, canonical events out, through a real local broker.

In the style of aiokafka's own benchmark scripts: print the setup, measure, report.

Setup. A local single-node broker (tools.broker.LocalKafka; or ``KAFKA_BOOTSTRAP_SERVERS``).
One stream of the corpus generator (benchmarks/corpus.py, seed 1, starting ~2 h 10 min before
now) is cut in two: its first ``receipts`` reports are loaded once, uncompressed, onto a raw topic
of ``PARTITIONS`` partitions with the ingress headers and timestamps the generator gives (phase
1); the rest is sent later, paced (phases 2+). Records are partitioned *by provider*, as an
ingress keyed by provider would: every report of one message then sits in one partition, in
generation order, so the set of events a correct processor emits does not depend on how a
consumer interleaves partitions. (With the generator's own ``provider:account`` partitioning it
would: push and poll reports of one message carry different accounts, and whether a late
intermediate status is stale depends on which partition is read first; about 2 % of the events
change with the interleaving.) The expected output is computed once by our embedded core in
generation order, and checked (full mode) to equal runs that consume each partition in turn, in
both orders.

Contenders, each a separate process consuming the SAME raw topic with its own fresh consumer group
and writing to its own fresh output topic (same partition count, ``message.timestamp.type=
LogAppendTime``) and dead-letter topic:

* ``ours x1``: ``python -m pipeline run`` (one process; our shipped defaults);
* ``ours x2``: the same with ``--workers 2``;
* ``single``, ``partitioned``: one process of that ``--topology``; with `` d1`` (``single d1``,
  ``partitioned d1``) also ``--max-batches-in-flight 1``, one batch at a time (not run unless
  named in ``--contenders``);
* ``relay``: benchmarks/relay.py, a bare aiokafka relay that produces the same number of records
  of the same size (real output records cycled) with no processing, with the processor's
  producer settings: the ceiling of the client; not run unless named: ``relay lz4``, the same
  with lz4 (aiokafka's level 9) and a 20 ms linger, the yardstick of figures before 2026-12-02;
  ``relay state``, which also writes a real state record per output to a compacted
  ``<output>.messages`` (the state topic's writes with nothing computed); ``relay hop``, which
  writes its outputs to ``<output>.hop`` and reads them back into the output topic in the same
  process (topology ``partitioned``'s two hops with nothing computed);
* ``baseline``: benchmarks/baseline_kafka.py, the straightforward baseline in a simple loop;
* ``quix``: benchmarks/peer_quix.py, the same job in Quix Streams.

Phase 1 (throughput): the contender drains the preloaded raw topic. receipts/s = corpus receipts
/ (last phase-1 output append time − first consumed batch). The first-consumed time is written by
each contender; for our processor by a hook on ``AIOKafkaConsumer.getmany`` that this file
installs when it runs the processor for the benchmark (``--serve-ours``, also in its spawned
workers). Correctness: every expected event present exactly once (compared as parsed JSON),
nothing else, the expected number of dead letters; for the relay the record count.
CPU: user+sys of the contender's process tree over the drain (from /proc, sampled every 50 ms),
and over its whole life (wait4). Peak RSS: the sum of VmHWM over the process tree.

Phases 2+ (latency): while the same contender keeps running, the stream goes on (the corpus's
continuation: new messages, plus provider retries and late statuses of phase-1 ones) on a
per-contender input topic it also subscribes to, at a fraction (50 %, then 25 % in full mode) of
the receipts/s it reached in phase 1, for ``latency_s`` each, paced every 5 ms like an ingress.
That topic is ``LogAppendTime`` too, so latency = output append time − input append time: the
contender's own latency, not the sending harness's queueing (our events carry the input
timestamp as ``observed_at``; the relay carries it in front of the key). The p50 of the first and
last fifth of a phase tells whether the contender kept up (flat) or fell behind (growing).

Then Kafka's own ProducerPerformance / ConsumerPerformance (kafka-producer-perf-test /
kafka-consumer-perf-test) on the same broker, same record count, same payloads (the real output
records): the ceiling of the broker itself.

Layout: this file is the entry point (and our processor's, with the hook below); benchmarks/e2e/
holds the harness (`harness.run`), the contenders (`contenders.Bench`; the scripts relay.py,
baseline_kafka.py, peer_quix.py), the expected output (`expected`), Kafka plumbing (`kafka_io`),
Kafka's perf tools (`kafka_tools`), /proc accounting (`proc`), the py-spy profile (`profile`) and
the report (`report`).

    python benchmarks/e2e_bench.py [--quick] [--profile] [--markdown] [--chart] [--keep] ...

``--profile`` drains phase 1 once more under py-spy with each of our one-process contenders
of the run and sorts the samples into stages, in CPU µs per receipt; ``--markdown`` prints the
run once more at the end as a Markdown ``## End to end`` section (setup, tables, console
report) to stdout, for a person to edit into benchmarks/RESULTS.md; ``--chart`` draws the
throughput chart to benchmarks/e2e_throughput.png.
No option writes to RESULTS.md.

Ends with ``e2e receipts_per_s=<best of ours> relay_ratio=<ours/relay> peer_ratio=<ours/quix>``;
exits 1 if any contender's output is incorrect. ``run(quick)`` returns the figures for
benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.e2e.config import FIRST_ENV  # noqa: E402


def _install_first_batch_hook(path: str) -> None:
    """Note when a group consumer of this process first gets records (benchmark only)."""
    from aiokafka import AIOKafkaConsumer

    original = AIOKafkaConsumer.getmany
    if getattr(original, "_e2e_hook", False):
        return
    done: list[bool] = []

    async def getmany(self, *partitions, timeout_ms=0, max_records=None):  # type: ignore[no-untyped-def]
        result = await original(self, *partitions, timeout_ms=timeout_ms, max_records=max_records)
        if result and not done and self._group_id is not None:
            done.append(True)
            with open(path, "a") as f:
                f.write(f"{time.time():.6f}\n")
        return result

    getmany._e2e_hook = True  # type: ignore[attr-defined]
    AIOKafkaConsumer.getmany = getmany


# Runs at import: in `--serve-ours` and in the workers that multiprocessing spawns from it (they
# import this file as __mp_main__). Never set when benchmarks/run.py imports this module.
if os.environ.get(FIRST_ENV):
    _install_first_batch_hook(os.environ[FIRST_ENV])


from benchmarks.e2e.config import CHOICES, CONTENDERS, QUICK  # noqa: E402
from benchmarks.e2e.harness import Tee, run  # noqa: E402
from benchmarks.e2e.report import LAST_RUN, draw_chart, markdown_section  # noqa: E402

#: The throughput chart's file name in benchmarks/ (``--chart``).
CHART = "e2e_throughput.png"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve-ours"]:  # our processor, with the first-batch hook installed
        from pipeline.cli import main as pipeline_main

        rest = argv[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        return pipeline_main(rest)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['receipts']} receipts, short latency phase (< 1 min)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also drain once more under py-spy with each of our one-process contenders and "
        "report CPU µs per receipt per stage",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="at the end, print the run as a Markdown '## End to end' section to stdout",
    )
    parser.add_argument(
        "--chart",
        action="store_true",
        help=f"draw the throughput chart to benchmarks/{CHART}",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated, in the order to run, of: " + ", ".join(CHOICES),
    )
    parser.add_argument("--receipts", type=int, help="phase-1 receipts (default: by mode)")
    parser.add_argument("--latency-s", type=float, help="phase-2 seconds (default: by mode)")
    parser.add_argument(
        "--latency-fractions",
        default="",
        help="comma-separated rates of the latency phases as fractions of phase 1's "
        "(default 0.5,0.25; --quick 0.5)",
    )
    parser.add_argument("--no-perf", action="store_true", help="skip Kafka's perf tools")
    parser.add_argument(
        "--ours-args", default="", help="extra flags for `python -m pipeline run` (experiments)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the contenders' logs")
    args = parser.parse_args(argv)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if unknown := [c for c in contenders if c not in CHOICES]:
        parser.error(f"unknown contenders: {', '.join(unknown)}")
    buffer = io.StringIO()
    result = run(
        args.quick,
        out=Tee(sys.stdout, buffer),
        profile=args.profile,
        receipts=args.receipts,
        perf=not args.no_perf,
        latency_s=args.latency_s,
        latency_fractions=[float(f) for f in args.latency_fractions.split(",") if f.strip()],
        keep=args.keep,
        ours_args=args.ours_args.split(),
        contenders=contenders,
    )
    if args.chart:
        draw_chart(
            LAST_RUN["results"], LAST_RUN["perf"], LAST_RUN["expected"], ROOT / "benchmarks" / CHART
        )
    if args.markdown:
        section = markdown_section(buffer.getvalue(), argv, CHART if args.chart else None)
        print(f"\n{section}", end="")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
