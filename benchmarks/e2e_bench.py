"""End-to-end benchmark: raw bodies on Kafka in, canonical events out, through a real local broker.

In the style of aiokafka's own benchmark scripts: print the setup, measure, report.

Setup. A local single-node broker (pipeline._broker.LocalKafka; or ``KAFKA_BOOTSTRAP_SERVERS``).
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
* ``relay``: benchmarks/relay.py, a bare aiokafka relay that produces the same number of records
  of the same size (real output records cycled) with no processing: the ceiling of the client;
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

    python benchmarks/e2e_bench.py [--quick] [--profile] [--write-results] [--keep] ...

``--profile`` drains phase 1 once more with ``ours x1`` under py-spy and sorts the samples into
stages; ``--write-results`` appends the report to benchmarks/RESULTS.md (``## End to end``) and
draws benchmarks/e2e_throughput.png.

Ends with ``e2e receipts_per_s=<best of ours> relay_ratio=<ours/relay> peer_ratio=<ours/quix>``;
exits 1 if any contender's output is incorrect. ``run(quick)`` returns the figures for
benchmarks/run.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Set (by this benchmark) in the environment of our processor: the file where each process of
#: it appends the time of its group consumer's first non-empty batch.
FIRST_ENV = "E2E_BENCH_FIRST_FILE"


def _install_first_batch_hook(path: str) -> None:
    """Note when a group consumer of this process first gets records (benchmark only)."""
    from aiokafka import AIOKafkaConsumer

    original = AIOKafkaConsumer.getmany
    if getattr(original, "_e2e_hook", False):
        return
    done = []

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


# ---------------------------------------------------------------------------------------------
# Everything below is the harness; imported lazily enough that the hook above stays cheap.

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

PARTITIONS = 4
#: Provider → raw partition (balanced by receipts: tencent 25 %, ultiroam 22 %, uspeedo 21 %,
#: yunpian 17 % + smspartner 15 %). Unrecognisable bodies are spread by offset.
PROVIDER_PARTITION = {"tencent": 0, "ultiroam": 1, "uspeedo": 2, "yunpian": 3, "smspartner": 3}
FULL = {
    "latency_fractions": (0.5, 0.25),
    "receipts": 200_000,
    "latency_s": 8.0,
    "latency_cap": 400_000,
    "settle_s": 0.5,
    "drain_timeout_s": 300.0,
}
QUICK = {
    "latency_fractions": (0.5,),
    "receipts": 20_000,
    "latency_s": 1.0,
    "latency_cap": 25_000,
    "settle_s": 0.25,
    "drain_timeout_s": 40.0,
}
CONTENDERS = ("ours x1", "ours x2", "relay", "baseline", "quix")
SEED, LATENCY_SEED = 1, 2
BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable


def _version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


# -- process-tree accounting --------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [
                    int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return out


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def _running(pid: int) -> bool:
    """Alive and not a zombie (without reaping it: its rusage is collected by wait4 later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _cpu_s(pid: int) -> float:
    """utime+stime of the process and its waited-for children, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / _TICK


def _hwm_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _runq_wait_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (schedstat)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
    return total / 1e9


class TreeSampler:
    """Samples CPU seconds, run-queue wait and per-process peak RSS of a process tree."""

    def __init__(self, pid: int, period: float = 0.05) -> None:
        self.pid = pid
        self.period = period
        self.series: list[tuple[float, float, float]] = []  # (wall time, cpu s, runq wait s)
        self.hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def sample(self) -> tuple[float, float, float]:
        cpu = wait = 0.0
        for p in _tree(self.pid):
            cpu += _cpu_s(p)
            wait += _runq_wait_s(p)
            kb = _hwm_kb(p)
            if kb > self.hwm.get(p, 0):
                self.hwm[p] = kb
        point = (time.time(), cpu, wait)
        self.series.append(point)
        return point

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, when: float) -> tuple[float, float]:
        """(tree CPU s, run-queue wait s) at the last sample taken at or before `when`."""
        best = (0.0, 0.0)
        for t, cpu, wait in self.series:
            if t > when:
                break
            best = (cpu, wait)
        return best

    @property
    def peak_rss_mb(self) -> float:
        return sum(self.hwm.values()) / 1024


# -- corpus, expected output ----------------------------------------------------------------------


def _provider_of(record: Any) -> str | None:
    from pipeline.core._batch import sniff

    for key, value in record.headers:
        if key == "provider":
            return value.decode("utf-8", "replace")
    route = sniff(record.value)
    return route.provider if route is not None else None


def place(records: Sequence[Any], topic: str) -> list[Any]:
    """The records as they will sit on `topic`: partitioned by provider, offsets in order."""
    from pipeline.core._batch import InputRecord

    offsets = [0] * PARTITIONS
    placed = []
    for i, r in enumerate(records):
        p = PROVIDER_PARTITION.get(_provider_of(r) or "", i % PARTITIONS)
        placed.append(InputRecord(topic, p, offsets[p], r.timestamp_ms, list(r.headers), r.value))
        offsets[p] += 1
    return placed


def _canonical_digest(value: bytes) -> bytes:
    import orjson

    canon = orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canon, digest_size=16).digest()


@dataclass
class Expected:
    events: int  # phase 1
    dead: int
    digests: Counter[bytes]
    receipts: int
    duplicates: int
    stale: int
    pool: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
    mean_value: float
    mean_record: float


@dataclass
class LatencyCorpus:
    """The continuation of the stream, sent in phase 2 (placed on a topic named "latency")."""

    records: list[Any]
    receipts: list[int]  # reports in record i
    events: list[int]  # expected events after records 0..i (phase 1 in the window)
    dead: list[int]  # expected dead letters after records 0..i


def _run_core(records: Sequence[Any], batch: int = 1000) -> tuple[list[Any], int, Any]:
    from pipeline.core._batch import Core
    from pipeline.core._window import Window

    core = Core(Window(5_000_000, 86_400_000))
    outputs: list[Any] = []
    dead = 0
    for i in range(0, len(records), batch):
        result = core.process(records[i : i + batch])
        outputs += result.outputs
        dead += len(result.dead_letters)
    return outputs, dead, core


def prepare(
    receipts: int, latency_receipts: int, topic: str, start_ms: int, cross_check: bool = True
) -> tuple[list[Any], Expected, LatencyCorpus, list[str]]:
    """One seed-1 stream of `receipts + latency_receipts` reports, starting at `start_ms`: its
    first `receipts` reports are phase 1 (loaded on `topic`), the rest is phase 2.

    Phase 2 continues the same stream (provider retries and late statuses of phase-1 messages
    included, identities never reused), so the expected phase-2 output is that of a window that
    still holds phase 1, as every contender's does. The corpus starts ~2 h 10 min before now so
    that the real timestamps phase 2 is sent with stay within the window's 24 h of phase 1.
    """
    from benchmarks.corpus import Truth, generate

    truth = Truth()
    records: list[Any] = []
    per: list[int] = []
    before = 0
    for r in generate(SEED, receipts + latency_receipts, start=start_ms, truth=truth):
        records.append(r)
        per.append(truth.receipts - before)
        before = truth.receipts
    split, total = 0, 0
    while split < len(records) and total < receipts:
        total += per[split]
        split += 1
    placed = place(records[:split], topic)
    later = place(records[split:], "latency")
    notes: list[str] = []
    # Generation order = each partition in partition order (partitioned by provider).
    outputs, dead, core = _run_core(placed)
    counters = core.window.counters.as_dict()
    ids = Counter(v for o in outputs for k, v in o.headers if k == "event_id")
    if any(n > 1 for n in ids.values()):
        notes.append("WARNING: the core itself emitted an event_id twice")
    values = sorted(o.value for o in outputs)
    orders = (
        ("each partition in turn", sorted(placed, key=lambda r: (r.partition, r.offset))),
        ("partitions in reverse", sorted(placed, key=lambda r: (-r.partition, r.offset))),
    )
    for name, order in orders if cross_check else ():
        other, other_dead, _ = _run_core(order)
        same = other_dead == dead and sorted(o.value for o in other) == values
        notes.append(f"core output consuming {name}: {'identical' if same else 'DIFFERENT'}")
    del values
    events, deads = [], []
    n_events, n_dead = 0, 0
    for r in later:
        result = core.process([r])
        n_events += len(result.outputs)
        n_dead += len(result.dead_letters)
        events.append(n_events)
        deads.append(n_dead)
    step = max(1, len(outputs) // 4096)
    record_bytes = [
        len(o.key) + len(o.value) + sum(len(k) + len(v) for k, v in o.headers) for o in outputs
    ]
    expected = Expected(
        events=len(outputs),
        dead=dead,
        digests=Counter(_canonical_digest(o.value) for o in outputs),
        receipts=total,
        duplicates=sum(counters["duplicates"].values()),
        stale=sum(counters["stale"].values()),
        pool=[(o.key, o.value, o.headers) for o in outputs[::step]],
        mean_value=sum(len(o.value) for o in outputs) / max(1, len(outputs)),
        mean_record=sum(record_bytes) / max(1, len(record_bytes)),
    )
    return placed, expected, LatencyCorpus(later, per[split:], events, deads), notes


# -- Kafka plumbing -----------------------------------------------------------------------------


async def create_topics(bootstrap: str, specs: list[tuple[str, int, dict[str, str]]]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, n, 1, topic_configs=configs) for name, n, configs in specs]
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.05)


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def load_topic(bootstrap: str, topic: str, records: Sequence[Any]) -> float:
    """Write records to their partitions with their timestamps and headers; return seconds."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        linger_ms=5,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        by_partition: dict[int, list[Any]] = {}
        for r in records:
            by_partition.setdefault(r.partition, []).append(r)
        futures = []
        for partition, rs in by_partition.items():
            batch = producer.create_batch()
            for r in rs:
                while (
                    batch.append(
                        key=None, value=r.value, timestamp=r.timestamp_ms, headers=r.headers
                    )
                    is None
                ):
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


class Watcher:
    """End offsets of a topic (no group, no fetching): cheap progress polls."""

    def __init__(self, bootstrap: str) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.consumer.start()

    async def count(self, topic: str) -> int:
        from aiokafka import TopicPartition

        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await self.consumer.end_offsets(tps)
        return sum(ends.values())

    async def wait_for(
        self, topic: str, target: int, timeout: float, settle: float, alive: Any = None
    ) -> tuple[int, bool, float]:
        """Poll until `target` records are on `topic` and the count is stable for `settle` s.
        Returns (count, reached, wall time the target was first seen)."""
        deadline = time.monotonic() + timeout
        count = await self.count(topic)
        while count < target and time.monotonic() < deadline and (alive is None or alive()):
            await asyncio.sleep(0.02)
            count = await self.count(topic)
        reached_at = time.time()
        reached = count >= target
        while True:  # late extras (duplicates) must be seen too
            await asyncio.sleep(settle)
            again = await self.count(topic)
            if again == count:
                return count, reached, reached_at
            count = again

    async def stop(self) -> None:
        await self.consumer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes]]:
    """Every record of the topic: (timestamp, key, value)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    out: list[tuple[int, bytes | None, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            batches = await consumer.getmany(*left, timeout_ms=500, max_records=100_000)
            for tp, messages in batches.items():
                out += [(m.timestamp, m.key, m.value) for m in messages]
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return out


# -- one contender --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    receipts_per_s: float = 0.0
    wall_s: float = 0.0
    outputs: int = 0
    expected: int = 0
    missing: int = 0
    unexpected: int = 0
    duplicates: int = 0
    dead: int = 0
    expected_dead: int = 0
    correct: bool = False
    cpu_drain_s: float = 0.0
    runq_drain_s: float = 0.0  # runnable, waiting for a CPU
    cpu_total_s: float = 0.0
    peak_rss_mb: float = 0.0
    phases: list[LatencyPhase] = field(default_factory=list)
    lat_records: int = 0  # phase-2+ records sent, all phases
    lat_outputs: int = 0
    lat_expected: int = 0
    last_append_ms: int = 0
    notes: list[str] = field(default_factory=list)

    def phase(self, fraction: float) -> LatencyPhase | None:
        return next((p for p in self.phases if p.fraction == fraction), None)

    @property
    def p99_ms(self) -> float:
        first = self.phases[0] if self.phases else None
        return first.p99_ms if first is not None else float("nan")


@dataclass
class LatencyPhase:
    """Records sent at `fraction` of the contender's phase-1 rate for a while."""

    fraction: float
    rate: float = 0.0  # receipts/s
    start_ms: int = 0  # wall time the phase began sending
    first_record: int = 0  # index into LatencyCorpus.records
    records: int = 0
    seconds: float = 0.0
    lag_ms: float = 0.0  # how far the sender fell behind its schedule
    outputs: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    drift: tuple[float, float] = (float("nan"), float("nan"))  # p50 first / last fifth


_OBSERVED: dict[str, int] = {}


def _observed_ms(text: str) -> int:
    ms = _OBSERVED.get(text)
    if ms is None:
        ms = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        if len(_OBSERVED) > 100_000:
            _OBSERVED.clear()
        _OBSERVED[text] = ms
    return ms


def _percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


class Bench:
    def __init__(
        self, size: dict[str, Any], say: Any, workdir: Path, bootstrap: str, run_id: str
    ) -> None:
        self.size = size
        self.ours_args: list[str] = []
        self.say = say
        self.workdir = workdir
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.raw = f"e2e-{run_id}-raw"
        self.topics: list[str] = [self.raw]
        self.started_ms = int(time.time() * 1000)

    def command(
        self,
        name: str,
        out: str,
        dlq: str,
        inputs: str,
        group: str,
        first: Path,
        expected: Expected,
        n_records: int,
    ) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        env.pop(FIRST_ENV, None)
        common = [
            "--bootstrap-servers",
            self.bootstrap,
            "--input-topics",
            inputs,
            "--output-topic",
            out,
            "--group-id",
            group,
        ]
        if name.startswith("ours"):
            env[FIRST_ENV] = str(first)
            workers = "2" if name.endswith("x2") else "1"
            cmd = [
                PYTHON,
                str(Path(__file__).resolve()),
                "--serve-ours",
                "--",
                "run",
                *common,
                "--dead-letter-topic",
                dlq,
                "--workers",
                workers,
                *self.ours_args,
            ]
        elif name == "relay":
            pool = self.workdir / "pool.json"
            cmd = [
                PYTHON,
                str(BENCH_DIR / "relay.py"),
                *common,
                "--pool",
                str(pool),
                "--events",
                str(expected.events),
                "--records",
                str(n_records),
                "--first-file",
                str(first),
            ]
        elif name == "baseline":
            cmd = [
                PYTHON,
                str(BENCH_DIR / "baseline_kafka.py"),
                *common,
                "--dead-letter-topic",
                dlq,
                "--first-file",
                str(first),
            ]
        else:
            cmd = [
                PYTHON,
                str(BENCH_DIR / "peer_quix.py"),
                *common,
                "--dead-letter-topic",
                dlq,
                "--first-file",
                str(first),
            ]
        return cmd, env

    async def contender(
        self,
        name: str,
        placed: Sequence[Any],
        expected: Expected,
        lat: LatencyCorpus,
        profile_to: Path | None = None,
    ) -> Result:
        res = Result(name, expected=expected.events, expected_dead=expected.dead)
        slug = name.replace(" ", "") + ("-profile" if profile_to is not None else "")
        out, dlq, lat_topic = (f"e2e-{self.run_id}-{slug}-{t}" for t in ("out", "dlq", "lat"))
        group = f"e2e-{self.run_id}-{slug}"
        keep = {"retention.ms": "-1"}
        await create_topics(
            self.bootstrap,
            [
                (out, PARTITIONS, {**keep, "message.timestamp.type": "LogAppendTime"}),
                (dlq, PARTITIONS, keep),
                # Input timestamps of phase 2 = when the broker appended the record: latency
                # is then the contender's alone (not the sending harness's queueing).
                (lat_topic, PARTITIONS, {**keep, "message.timestamp.type": "LogAppendTime"}),
            ],
        )
        self.topics += [out, dlq, lat_topic]
        first = self.workdir / f"{slug}.first"
        first.unlink(missing_ok=True)
        cmd, env = self.command(
            name, out, dlq, f"{self.raw},{lat_topic}", group, first, expected, len(placed)
        )
        if profile_to is not None:
            spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
            cmd = [
                spy or "py-spy",
                "record",
                "--rate",
                "400",
                "--format",
                "raw",
                "-o",
                str(profile_to),
                "--nonblocking",
                "--",
                *cmd,
            ]
        log = open(self.workdir / f"{slug}.log", "wb")  # noqa: SIM115 - closed in finally
        launched = time.time()
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=ROOT,
            start_new_session=True,
        )
        sampler = TreeSampler(proc.pid).start()
        watcher = Watcher(self.bootstrap)
        await watcher.start()
        rusage = None
        try:
            # Phase 1: drain the preloaded raw topic.
            target = expected.events
            alive = partial(_running, proc.pid)
            count, reached, done_t = await watcher.wait_for(
                out, target, self.size["drain_timeout_s"], self.size["settle_s"], alive
            )
            if not alive():
                res.notes.append("exited early: see its log (--keep)")
            done_cpu, done_wait = sampler.at(done_t)
            if not reached:
                res.notes.append(f"phase 1 timed out at {count}/{target} outputs")
            firsts = [float(x) for x in first.read_text().split()] if first.exists() else []
            first_t = min(firsts) if firsts else launched
            if not firsts:
                res.notes.append("no first-consumed time reported; using launch time")
            first_cpu, first_wait = sampler.at(first_t)
            res.cpu_drain_s = done_cpu - first_cpu
            res.runq_drain_s = done_wait - first_wait
            res.notes.append(f"started in {first_t - launched:.2f}s")
            # Phase 2 (and 3): a fraction of the rate of phase 1, estimated from when the
            # watcher saw the last output (the figure reported comes from the append times).
            estimate = expected.receipts / max(1e-3, done_t - first_t)
            if reached and profile_to is None:
                for fraction in self.size["latency_fractions"]:
                    phase = LatencyPhase(fraction, rate=estimate * fraction)
                    res.phases.append(phase)
                    await self.latency_phase(
                        res, phase, lat, lat_topic, out, expected, len(placed), alive
                    )
        finally:
            await watcher.stop()
            if _running(proc.pid):
                target_pid = proc.pid
                if profile_to is not None:  # py-spy's child is the processor
                    kids = _children(proc.pid)
                    target_pid = kids[0] if kids else proc.pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target_pid, signal.SIGTERM)
            sampler_thread_stop = asyncio.get_running_loop().run_in_executor(None, self._reap, proc)
            rusage = await sampler_thread_stop
            sampler.stop()
            log.close()
        if rusage is not None:
            res.cpu_total_s = rusage.ru_utime + rusage.ru_stime
        res.peak_rss_mb = sampler.peak_rss_mb
        # Correctness of phase 1 (and counts of the latency phases).
        all_outputs = await read_topic(self.bootstrap, out)
        self.check(res, name, all_outputs, expected, lat)
        res.dead = await self._count(dlq)
        if name != "relay":
            expected_dead = expected.dead + (
                lat.dead[res.lat_records - 1] if res.lat_records else 0
            )
            res.expected_dead = expected_dead
            if res.dead != expected_dead:
                res.correct = False
                res.notes.append(f"dead letters {res.dead}, expected {expected_dead}")
        if res.outputs and reached:
            res.wall_s = max(1e-3, res.last_append_ms / 1000 - first_t)
            res.receipts_per_s = expected.receipts / res.wall_s
        return res

    def _reap(self, proc: subprocess.Popen[bytes]) -> Any:
        if proc.returncode is not None:
            return None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return rusage
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return rusage

    async def _count(self, topic: str) -> int:
        watcher = Watcher(self.bootstrap)
        await watcher.start()
        try:
            return await watcher.count(topic)
        finally:
            await watcher.stop()

    async def latency_phase(
        self,
        res: Result,
        phase: LatencyPhase,
        lat: LatencyCorpus,
        topic: str,
        out: str,
        expected: Expected,
        n_phase1: int,
        alive: Any,
    ) -> None:
        """Send the next records of the stream at `phase.rate` receipts/s for latency_s."""
        from aiokafka import AIOKafkaProducer

        rate = phase.rate
        budget = rate * self.size["latency_s"]
        first = n = res.lat_records
        total = 0
        while n < len(lat.records) and total + lat.receipts[n] <= budget:
            total += lat.receipts[n]
            n += 1
        if n == len(lat.records):
            res.notes.append(
                f"latency corpus ran out: {total} receipts at {rate:.0f}/s "
                f"({total / rate:.1f}s instead of {self.size['latency_s']:.0f}s)"
            )
        phase.first_record, phase.records = first, n - first
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
        )
        await producer.start()
        futures = []
        try:
            # Paced like an ingress: every 5 ms, what is due goes out as one batch per partition.
            phase.start_ms = int(time.time() * 1000)
            started = time.monotonic()
            sent_receipts = 0
            i = first
            lag = 0.0
            while i < n:
                now = time.monotonic()
                due = started + sent_receipts / rate
                if due > now:
                    await asyncio.sleep(min(due - now, 0.005))
                    continue
                lag = max(lag, now - due)
                batches: dict[int, Any] = {}
                while i < n and started + sent_receipts / rate <= now:
                    r = lat.records[i]
                    batch = batches.get(r.partition)
                    if batch is None:
                        batch = batches[r.partition] = producer.create_batch()
                    appended = batch.append(
                        key=None, value=r.value, timestamp=None, headers=r.headers
                    )
                    if appended is None:
                        futures.append(
                            await producer.send_batch(batch, topic, partition=r.partition)
                        )
                        batches[r.partition] = producer.create_batch()
                        continue
                    sent_receipts += lat.receipts[i]
                    i += 1
                for partition, batch in batches.items():
                    if batch.record_count():
                        futures.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*futures)
            phase.seconds = time.monotonic() - started
            phase.lag_ms = lag * 1000
        finally:
            await producer.stop()
        res.lat_records = n
        if res.name == "relay":
            want = (n_phase1 + n) * expected.events // n_phase1 - expected.events
        else:
            want = lat.events[n - 1] if n else 0
        res.lat_expected = want
        watcher = Watcher(self.bootstrap)
        await watcher.start()
        try:
            await watcher.wait_for(out, expected.events + want, 30.0, self.size["settle_s"], alive)
        finally:
            await watcher.stop()

    def check(
        self,
        res: Result,
        name: str,
        outputs: list[tuple[int, bytes | None, bytes]],
        expected: Expected,
        lat: LatencyCorpus,
    ) -> None:
        import orjson

        phase1: list[bytes] = []
        samples: list[tuple[int, int]] = []  # (input timestamp, output append time)
        ids: Counter[str] = Counter()
        boundary = self.started_ms
        last = 0
        for stamp, key, value in outputs:
            if name == "relay":
                observed = int((key or b"0|").split(b"|", 1)[0])
                if observed >= boundary:
                    samples.append((observed, stamp))
                else:
                    phase1.append(value)
                    last = max(last, stamp)
                continue
            ev = orjson.loads(value)
            observed = _observed_ms(ev["observed_at"])
            if observed >= boundary:
                samples.append((observed, stamp))
            else:
                phase1.append(value)
                last = max(last, stamp)
                ids[ev["event_id"]] += 1
        res.last_append_ms = last
        res.outputs = len(phase1)
        res.lat_outputs = len(samples)
        samples.sort()
        starts = [p.start_ms for p in res.phases] + [2**62]
        for k, phase in enumerate(res.phases):
            mine = [out - inp for inp, out in samples if starts[k] <= inp < starts[k + 1]]
            phase.outputs = len(mine)
            if mine:
                phase.p50_ms = _percentile(mine, 0.50)
                phase.p99_ms = _percentile(mine, 0.99)
                phase.max_ms = float(max(mine))
                fifth = max(1, len(mine) // 5)
                phase.drift = (_percentile(mine[:fifth], 0.5), _percentile(mine[-fifth:], 0.5))
        ok = True
        if name == "relay":  # outputs follow the global record count, whichever phase
            ok = res.outputs + res.lat_outputs == expected.events + res.lat_expected
            if not ok:
                res.notes.append(
                    f"{res.outputs} + {res.lat_outputs} outputs, expected "
                    f"{expected.events} + {res.lat_expected}"
                )
        else:
            got = Counter(_canonical_digest(v) for v in phase1)
            res.missing = sum((expected.digests - got).values())
            res.unexpected = sum((got - expected.digests).values())
            res.duplicates = sum(n - 1 for n in ids.values() if n > 1)
            ok = res.missing == 0 and res.unexpected == 0 and res.duplicates == 0
            if not ok:
                res.notes.append(
                    f"phase 1: {res.missing} missing, {res.unexpected} unexpected, "
                    f"{res.duplicates} duplicate event_ids"
                )
        if name != "relay" and res.lat_outputs != res.lat_expected:
            ok = False
            res.notes.append(
                f"latency phases: {res.lat_outputs} outputs, expected {res.lat_expected}"
            )
        res.correct = ok


# -- Kafka's own perf tools -----------------------------------------------------------------------


def tools_classpath() -> str | None:
    """Kafka's libs plus kafka-tools (fetched once with mvn next to the cached libs)."""
    from pipeline._broker import KAFKA_VERSION, fetch_kafka

    libs = fetch_kafka(KAFKA_VERSION)
    jar = next(libs.glob("kafka-tools-[0-9]*.jar"), None)
    if jar is None:
        tools = libs.parent / "tools"
        jar = tools / f"kafka-tools-{KAFKA_VERSION}.jar"
        if not jar.is_file():
            mvn = os.environ.get("MVN") or shutil.which("mvn")
            if not mvn:
                return None
            tools.mkdir(exist_ok=True)
            res = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                    f"-Dartifact=org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
                    f"-DoutputDirectory={tools}",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if res.returncode != 0 or not jar.is_file():
                return None
    return f"{libs}/*:{jar}"


def perf_tests(
    bootstrap: str, expected: Expected, workdir: Path, run_id: str, say: Any
) -> dict[str, float]:
    from pipeline._broker import find_java

    classpath = tools_classpath()
    if classpath is None:
        say("kafka perf tools: kafka-tools jar not available (no mvn?): skipped")
        return {}
    java = find_java()
    topic = f"e2e-{run_id}-perf"
    asyncio.run(create_topics(bootstrap, [(topic, PARTITIONS, {"retention.ms": "-1"})]))
    payloads = workdir / "payloads.txt"
    payloads.write_bytes(b"\n".join(v for _, v, _ in expected.pool))
    jvm = [java, "-Xmx512m", "-XX:+UseG1GC", "-cp", classpath]
    n = expected.events
    prod = subprocess.run(
        [
            *jvm,
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(n),
            "--payload-file",
            str(payloads),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            "compression.type=lz4",
            "linger.ms=20",
            "batch.size=1048576",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    result: dict[str, float] = {}
    found = re.findall(
        r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
        r"([\d.]+) ms avg latency, ([\d.]+) ms max latency",
        prod.stdout,
    )
    if found:
        _, rps, mbps, avg, _mx = found[-1]
        result.update(
            kafka_producer_records_per_s=float(rps),
            kafka_producer_mb_per_s=float(mbps),
            kafka_producer_avg_latency_ms=float(avg),
        )
    else:
        say(f"ProducerPerformance failed:\n{prod.stdout[-800:]}{prod.stderr[-800:]}")
    cons = subprocess.run(
        [
            *jvm,
            "org.apache.kafka.tools.ConsumerPerformance",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--messages",
            str(n),
            "--group",
            f"e2e-{run_id}-perf",
            "--timeout",
            "60000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    rows = [line.split(",") for line in cons.stdout.splitlines() if line.count(",") >= 9]
    if len(rows) >= 2 and rows[-1][0].strip()[:2].isdigit():
        head = [h.strip() for h in rows[0]]
        row = dict(zip(head, (c.strip() for c in rows[-1]), strict=False))
        with contextlib.suppress(KeyError, ValueError):
            result.update(
                kafka_consumer_records_per_s=float(row["nMsg.sec"]),
                kafka_consumer_mb_per_s=float(row["MB.sec"]),
                kafka_consumer_fetch_records_per_s=float(row["fetch.nMsg.sec"]),
            )
    if "kafka_consumer_records_per_s" not in result:
        say(f"ConsumerPerformance failed:\n{cons.stdout[-800:]}{cons.stderr[-800:]}")
    return result


# -- profile of our processor -------------------------------------------------------------------


def classify_profile(path: Path) -> tuple[dict[str, float], int]:
    """Share of py-spy samples per stage, from raw (collapsed) stacks."""
    core_src = (ROOT / "pipeline" / "_core.py").read_text().splitlines()
    start = next(
        (i + 1 for i, line in enumerate(core_src) if "encode = _ENCODER.encode" in line), 0
    )
    end = next(
        (
            i + 1
            for i, line in enumerate(core_src)
            if line.strip() == "return BatchResult(outputs, dead)" and i + 1 > start
        ),
        10**9,
    )
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or not stack:
            continue
        frames = stack.split(";")
        counts[_stage(frames, start, end)] += int(n)
        total += int(n)
    return {k: v / total for k, v in counts.most_common()} if total else {}, total


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


def _stage(frames: list[str], enc_start: int, enc_end: int) -> str:
    """The stage a py-spy stack belongs to (first match, outermost concern first)."""
    parsed = []
    for f in frames:
        m = _FRAME.match(f)
        parsed.append((m["func"], m["file"], int(m["line"])) if m else (f, "", 0))
    names = [func for func, _, _ in parsed]
    files = [file for _, file, _ in parsed]

    def in_files(*parts: str) -> bool:
        return any(part in f for f in files for part in parts)

    def in_funcs(*prefixes: str) -> bool:
        return any(n.startswith(prefixes) for n in names)

    if in_funcs("OutputFollower."):
        return "output follower (fetch + parse our own output, window.load_batch)"
    if in_files("_window.py"):
        return "window (dedupe: hashing, check_batch)"
    if in_files("/providers/", "_normalise.py", "_timefmt.py", "_context.py", "schemas/") or (
        in_funcs("Decoder.", "sniff", "_header")
    ):
        return "decode + normalise (providers, msgspec/orjson decode)"
    for _func, file, line in reversed(parsed):
        if file.endswith("_core.py"):
            if enc_start <= line <= enc_end:  # Core.process or its comprehensions
                return "encode (msgspec encode, output records)"
            return "core glue (keys, lists)"
    producing = in_files("aiokafka/producer", "_partitioner.py") or in_funcs("Sink.")
    if producing and in_files("aiokafka/codec.py"):
        return "aiokafka produce: lz4 compression"
    if producing:
        return "aiokafka produce: batch build, partitioner, send"
    if in_files("aiokafka/consumer", "aiokafka/record", "aiokafka/codec.py"):
        return "aiokafka consume: fetch, decompress, parse records"
    if in_funcs("Processor.run_batch"):
        return "loop glue (InputRecords, gather, commit)"
    if in_files("aiokafka/"):
        return "aiokafka network/protocol (both directions)"
    if in_files("asyncio/", "uvloop", "anyio/") or in_funcs("Processor."):
        return "event loop, awaiting"
    if in_files("importlib", "<frozen"):
        return "start-up (imports)"
    return "other"


# -- report ---------------------------------------------------------------------------------------


def table(results: list[Result], ours: float) -> list[str]:
    head = (
        f"  {'contender':<10}{'receipts/s':>12}{'vs ours':>8}{'wall s':>8}{'events':>9}"
        f"{'dead':>6}{'correct':>9}{'cpu s':>7}{'runq s':>7}{'cpu µs/rcpt':>12}"
        f"{'cpu total s':>12}{'peak RSS MB':>12}"
    )
    lines = [head]
    for r in results:
        per = r.cpu_drain_s / (r.receipts_per_s * r.wall_s) * 1e6 if r.receipts_per_s else 0
        lines.append(
            f"  {r.name:<10}{r.receipts_per_s:>12,.0f}"
            f"{(r.receipts_per_s / ours if ours else 0):>8.2f}{r.wall_s:>8.2f}{r.outputs:>9}"
            f"{r.dead:>6}{'yes' if r.correct else 'NO':>9}{r.cpu_drain_s:>7.2f}"
            f"{r.runq_drain_s:>7.2f}{per:>12.1f}"
            f"{r.cpu_total_s:>12.2f}{r.peak_rss_mb:>12.0f}"
        )
    return lines


def latency_table(results: list[Result]) -> list[str]:
    head = (
        f"  {'contender':<10}{'load':>6}{'receipts/s':>12}{'seconds':>8}{'events':>8}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'p50 first→last fifth':>22}{'send lag ms':>12}"
    )
    lines = [head]
    for r in results:
        for p in r.phases:
            drift = f"{p.drift[0]:.0f} → {p.drift[1]:.0f}"
            lines.append(
                f"  {r.name:<10}{p.fraction:>6.0%}{p.rate:>12,.0f}{p.seconds:>8.1f}"
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
    from pipeline._broker import KAFKA_VERSION

    load = os.getloadavg()
    per_part = Counter(r.partition for r in placed)
    raw_bytes = sum(len(r.value) for r in placed)
    start = datetime.fromtimestamp(start_ms / 1000).astimezone().strftime("%H:%M:%S %Z")
    return [
        f"python      {platform.python_implementation()} {platform.python_version()} ({PYTHON})",
        f"libraries   aiokafka {_version('aiokafka')}, uvloop {_version('uvloop')}, msgspec "
        f"{_version('msgspec')}, orjson {_version('orjson')}, quixstreams "
        f"{_version('quixstreams')} (confluent-kafka {_version('confluent-kafka')})",
        f"kafka       {'external broker at ' + bootstrap if external else 'local KRaft broker '}"
        f"{'' if external else KAFKA_VERSION + ' (pipeline._broker.LocalKafka, 512 MiB heap)'}",
        f"machine     {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"({_cpu_model()}), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"(broker, contender and harness share them)",
        f"corpus      benchmarks/corpus.py seed {SEED} from {start}: phase 1 = {expected.receipts} "
        f"receipts in {len(placed)} records ({raw_bytes / 1e6:.1f} MB), {expected.duplicates} "
        f"duplicate and {expected.stale} stale reports, {expected.dead} bodies dead-lettered; "
        f"phase 2 = the stream's continuation (up to {sum(lat.receipts)} receipts)",
        f"raw topic   {PARTITIONS} partitions by provider, uncompressed; records per partition "
        f"{dict(sorted(per_part.items()))}",
    ]


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

    from pipeline._broker import LocalKafka, kafka_bootstrap_from_env

    size = dict(QUICK if quick else FULL)
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
        (workdir / "pool.json").write_bytes(
            json.dumps(
                [
                    [k.decode(), v.decode(), [[n, hv.decode()] for n, hv in h]]
                    for k, v, h in expected.pool
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
                f"  {name:<9} {res.receipts_per_s:>10,.0f} receipts/s  wall {res.wall_s:.2f}s  "
                f"correct={'yes' if res.correct else 'NO'}  "
                + "  ".join(f"p99@{p.fraction:.0%} {p.p99_ms:.0f} ms" for p in res.phases)
                + "  "
                f"({'; '.join(res.notes)})"
            )
        ceiling = {} if quick or not perf else perf_tests(bootstrap, expected, workdir, run_id, say)
        by = {r.name: r for r in results}
        ours_names = [n for n in ("ours x1", "ours x2") if n in by]
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
        profile_shares: dict[str, float] = {}
        if profile:
            profile_shares = profile_ours(bench, placed, expected, lat, say)
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
        result.update({f"profile_{k}": v for k, v in profile_shares.items()})
        say()
        wrong = ", ".join(r.name for r in results if not r.correct)
        say(
            f"e2e took {time.perf_counter() - began:.0f}s; outputs "
            f"{'all correct' if ok else 'INCORRECT: ' + wrong}"
        )
        say(
            f"e2e receipts_per_s={best_ours:.0f} relay_ratio={result['relay_ratio']:.2f} "
            f"peer_ratio={result['peer_ratio']:.2f}"
        )
        run.last = {  # type: ignore[attr-defined]
            "results": results,
            "perf": ceiling,
            "expected": expected,
            "setup": setup,
            "size": size,
            "placed": len(placed),
            "bootstrap": bootstrap,
            "external": bool(external),
            "profile": profile_shares,
        }
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


def profile_ours(
    bench: Bench, placed: Sequence[Any], expected: Expected, lat: LatencyCorpus, say: Any
) -> dict[str, float]:
    """Drain the raw topic once more with our processor (1 worker) under py-spy."""
    if not (shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")):
        say("profile     py-spy not installed: skipped")
        return {}
    path = bench.workdir / "profile.txt"
    res = asyncio.run(bench.contender("ours x1", placed, expected, lat, profile_to=path))
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not path.exists():
        say("profile     py-spy wrote nothing: skipped")
        return {}
    shares, samples = classify_profile(path)
    say()
    say(
        f"profile of ours x1 (py-spy, 400 Hz, {samples} samples over the process's life; drain "
        f"at {res.receipts_per_s:,.0f} receipts/s under the profiler):"
    )
    for stage, share in shares.items():
        say(f"  {stage:<52}{share:>6.1%}")
    return shares


# -- results file and chart -----------------------------------------------------------------------


def write_results(report: str, argv: list[str], started: str) -> None:
    """Append the `## End to end` section to RESULTS.md and draw the throughput chart."""
    last = run.last  # type: ignore[attr-defined]
    results: list[Result] = last["results"]
    perf: dict[str, float] = last["perf"]
    expected: Expected = last["expected"]
    chart = BENCH_DIR / "e2e_throughput.png"
    draw_chart(results, perf, expected, chart)
    ours = next((r.receipts_per_s for r in results if r.name == "ours x1"), 0.0)
    setup = {line[:12].strip(): line[12:].strip() for line in last["setup"]}
    lines = [
        "",
        "## End to end",
        "",
        "Raw bodies on a Kafka topic in, canonical events on an output topic out, through a local",
        "broker: our processor (1 and 2 worker processes), a bare aiokafka relay (the client's",
        "ceiling: same records in, same number and size of records out, no processing), the",
        "straightforward baseline in a simple aiokafka loop, and Quix Streams doing the same job",
        "(benchmarks/e2e_bench.py explains the method in its docstring).",
        "",
        f"- Run: {started}; command: `.venv/bin/python benchmarks/e2e_bench.py {' '.join(argv)}`",
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
        "| contender | receipts/s | vs ours x1 | wall s | events | correct | CPU s | run-queue s "
        "| CPU µs/receipt | peak RSS MB |",
        "|---|---:|---:|---:|---:|:-:|---:|---:|---:|---:|",
    ]
    for r in results:
        per = r.cpu_drain_s / (r.receipts_per_s * r.wall_s) * 1e6 if r.receipts_per_s else 0
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
    shares = last.get("profile") or {}
    if shares:
        lines += [
            "",
            "Where ours x1 spends its CPU (py-spy samples of one more phase-1 drain, sorted "
            "into stages by `classify_profile`):",
            "",
            "| stage | share of samples |",
            "|---|---:|",
        ]
        lines += [f"| {stage} | {share:.1%} |" for stage, share in shares.items()]
    lines += [
        "",
        f"![receipts per second per contender]({chart.name})",
        "",
        "<details><summary>Full console report</summary>",
        "",
        "```",
        report.rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]
    path = BENCH_DIR / "RESULTS.md"
    fresh = not path.exists() or path.stat().st_size == 0
    with open(path, "a") as f:
        if fresh:
            f.write("# Benchmark results\n")
        f.write("\n".join(lines))


def draw_chart(
    results: list[Result], perf: dict[str, float], expected: Expected, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in results]
    values = [r.receipts_per_s for r in results]
    colors = [
        "#1f77b4" if n.startswith("ours") else "#7f7f7f" if n == "relay" else "#ff7f0e"
        for n in names
    ]
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


class _Tee:
    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve-ours"]:  # our processor, with the first-batch hook installed
        from pipeline._cli import main as pipeline_main

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
        help="also drain once more with ours x1 under py-spy and classify",
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help="append '## End to end' to benchmarks/RESULTS.md, draw benchmarks/e2e_throughput.png",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of: " + ", ".join(CONTENDERS),
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
    import io

    buffer = io.StringIO()
    started = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    result = run(
        args.quick,
        out=_Tee(sys.stdout, buffer),
        profile=args.profile,
        receipts=args.receipts,
        perf=not args.no_perf,
        latency_s=args.latency_s,
        latency_fractions=[float(f) for f in args.latency_fractions.split(",") if f.strip()],
        keep=args.keep,
        ours_args=args.ours_args.split(),
        contenders=[c.strip() for c in args.contenders.split(",") if c.strip()],
    )
    if args.write_results:
        write_results(buffer.getvalue(), argv, started)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
