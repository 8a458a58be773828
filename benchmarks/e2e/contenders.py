"""One contender run: start it, drain phase 1, pace the latency phases, check its output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.e2e.config import (
    BENCH_DIR,
    FIRST_ENV,
    HOP_RELAYS,
    OURS,
    PARTITIONS,
    PYTHON,
    RELAYS,
    ROOT,
    STATE_RELAYS,
    Size,
)
from benchmarks.e2e.expected import Expected, LatencyCorpus, canonical_digest
from benchmarks.e2e.kafka_io import Watcher, create_topics, read_topic
from benchmarks.e2e.proc import TreeSampler, child_pids, is_running

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
    def cpu_us_per_receipt(self) -> float:
        """CPU µs of the process tree per phase-1 receipt."""
        if not self.receipts_per_s:
            return 0.0
        return self.cpu_drain_s / (self.receipts_per_s * self.wall_s) * 1e6

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


def _relay_topics(name: str, out: str) -> list[tuple[str, int, dict[str, str]]]:
    """The topics a relay writes beside `out`: a state topic, or the one it hops through."""
    if name in STATE_RELAYS:
        return [(f"{out}.messages", PARTITIONS, {"cleanup.policy": "compact"})]
    if name in HOP_RELAYS:
        return [(f"{out}.hop", PARTITIONS, {})]
    return []


class Bench:
    def __init__(self, size: Size, say: Any, workdir: Path, bootstrap: str, run_id: str) -> None:
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
        if name in OURS:
            env[FIRST_ENV] = str(first)
            cmd = [
                PYTHON,
                str(BENCH_DIR / "e2e_bench.py"),
                "--serve-ours",
                "--",
                "run",
                *common,
                "--dead-letter-topic",
                dlq,
                *OURS[name],
                *self.ours_args,
            ]
        elif name in RELAYS:
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
                *RELAYS[name],
            ]
            if name in STATE_RELAYS:
                states = self.workdir / "state_pool.json"
                cmd += ["--state-topic", f"{out}.messages", "--state-pool", str(states)]
            if name in HOP_RELAYS:
                cmd += ["--hop-topic", f"{out}.hop"]
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
                # What our processor creates itself (a relay needs them made).
                *_relay_topics(name, out),
                # Input timestamps of phase 2 = when the broker appended the record: latency
                # is then the contender's alone (not the sending harness's queueing).
                (lat_topic, PARTITIONS, {**keep, "message.timestamp.type": "LogAppendTime"}),
            ],
        )
        self.topics += [out, dlq, lat_topic, *(t for t, _, _ in _relay_topics(name, out))]
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
            alive = partial(is_running, proc.pid)
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
            if is_running(proc.pid):
                target_pid = proc.pid
                if profile_to is not None:  # py-spy's child is the processor
                    kids = child_pids(proc.pid)
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
        if name not in RELAYS:
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
        if res.name in RELAYS:
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
            if name in RELAYS:
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
        if name in RELAYS:  # outputs follow the global record count, whichever phase
            ok = res.outputs + res.lat_outputs == expected.events + res.lat_expected
            if not ok:
                res.notes.append(
                    f"{res.outputs} + {res.lat_outputs} outputs, expected "
                    f"{expected.events} + {res.lat_expected}"
                )
        else:
            got = Counter(canonical_digest(v) for v in phase1)
            res.missing = sum((expected.digests - got).values())
            res.unexpected = sum((got - expected.digests).values())
            res.duplicates = sum(n - 1 for n in ids.values() if n > 1)
            ok = res.missing == 0 and res.unexpected == 0 and res.duplicates == 0
            if not ok:
                res.notes.append(
                    f"phase 1: {res.missing} missing, {res.unexpected} unexpected, "
                    f"{res.duplicates} duplicate event_ids"
                )
        if name not in RELAYS and res.lat_outputs != res.lat_expected:
            ok = False
            res.notes.append(
                f"latency phases: {res.lat_outputs} outputs, expected {res.lat_expected}"
            )
        res.correct = ok
