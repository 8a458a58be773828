"""Helpers of the integration tests: real broker, real processor subprocesses.

Every test gets topics and a consumer group of its own (uuid suffix), so tests never see each
other's records even though they share the session's broker. The processor always runs as a
subprocess (`python -m pipeline run ...`), exactly as an operator starts it; its JSON log lines
are read from its stderr by a thread and kept for assertions (`Proc.logs`).

Expectations are computed by running the same records through the embedded core
(`Core(Window(...)).process`). Records are *planned* onto input partitions by provider (see
`plan`): every status of one message then sits in one input partition, in the order the stream
has it, so the result does not depend on how the processor interleaves partitions, and one
sequential run of the core is the exact expectation (values included: topic, partition and
offset of the source record are part of each event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from unittest import mock

import aiokafka.consumer.fetcher as aiokafka_fetcher
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from benchmarks import corpus
from pipeline.core import BatchResult, Core, CoreConfig, InputRecord, sniff
from pipeline.state import Window
from tools import broker as broker_module
from tools.broker import LocalKafka

ROOT = Path(__file__).resolve().parents[2]

#: Short waits everywhere: the broker is local, the suite must stay fast.
FETCH_WAIT_MS = 50
#: The broker's group.min.session.timeout.ms: the shortest session a test can ask for.
MIN_SESSION_MS = 6000
BIG = 16 * 1024 * 1024  # max.message.bytes of a raw topic that must take 9 MiB bodies


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def unique(name: str) -> str:
    return f"it-{name}-{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------- topics


class Topics:
    """A raw, an output and a dead-letter topic plus a consumer group, all unique to one test."""

    def __init__(self, name: str, raw: int, out: int, dlq: int) -> None:
        self.raw = unique(f"{name}-raw")
        self.out = unique(f"{name}-out")
        self.dlq = unique(f"{name}-dlq")
        self.group = unique(f"{name}-group")
        self.partitions = {self.raw: raw, self.out: out, self.dlq: dlq}


async def create_topics(
    bootstrap: str,
    partitions: dict[str, int],
    configs: dict[str, str] | None = None,
    *,
    replicas: int = 1,
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, n, replicas, topic_configs=dict(configs or {}))
                for name, n in partitions.items()
            ]
        )
    finally:
        await admin.close()
    # Wait until every partition has a leader: a producer or consumer started earlier would
    # otherwise see a partial topic (or auto-create a 1-partition one).
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            await consumer._client.force_metadata_update()
            if all(
                len(consumer.partitions_for_topic(name) or ()) == n
                for name, n in partitions.items()
            ):
                return
            assert time.monotonic() < deadline, f"topics {partitions} not ready"
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


async def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    """Grow `topic` to `total` partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=total)})
    finally:
        await admin.close()


async def make_topics(
    bootstrap: str,
    name: str,
    *,
    raw: int = 4,
    out: int = 6,
    dlq: int = 2,
    raw_config: dict[str, str] | None = None,
    replicas: int = 1,
) -> Topics:
    """The test's topics, at the broker's default limits (the pipeline must live with them).
    `raw_config` configures the raw topic only, for tests about what becomes of records
    an ingress so configured lands (bodies above 1 MiB, stamps far ahead). `replicas`: the
    cluster's default replication factor (aiokafka cannot ask for the default itself)."""
    topics = Topics(name, raw, out, dlq)
    if raw_config is None:
        await create_topics(bootstrap, topics.partitions, replicas=replicas)
    else:
        assert replicas == 1
        await create_topics(bootstrap, {topics.raw: raw}, raw_config)
        await create_topics(bootstrap, {topics.out: out, topics.dlq: dlq})
    return topics


# ---------------------------------------------------------------------------- records and plans


def provider_of(record: InputRecord) -> str:
    """The provider the core will resolve for `record` (header, else body shape), or "unknown"."""
    for key, value in record.headers:
        if key == "provider":
            return value.decode("utf-8", "replace")
    route = sniff(record.value)
    return route.provider if route is not None else "unknown"


PROVIDER_SLOT = {"uspeedo": 0, "ultiroam": 1, "yunpian": 2, "smspartner": 3, "tencent": 4}


def plan(
    records: Iterable[InputRecord], topic: str, partitions: int, *, spread_unknown: bool = True
) -> list[InputRecord]:
    """`records` placed on `topic` the way the tests produce them: partition by provider.

    A message key is per provider, so all reports of one message land in one partition in
    stream order: the output cannot depend on the interleaving of partitions. Bodies of no
    provider produce no events and are spread round-robin. Offsets are what the broker will
    assign to a fresh topic produced to in this order.
    """
    offsets = [0] * partitions
    out = []
    spare = 0
    for record in records:
        slot = PROVIDER_SLOT.get(provider_of(record))
        if slot is None:
            slot, spare = (spare if spread_unknown else 0), spare + 1
        p = slot % partitions
        out.append(record._replace(topic=topic, partition=p, offset=offsets[p]))
        offsets[p] += 1
    return out


def expected(records: Sequence[InputRecord], batch: int = 500) -> BatchResult:
    """What a correct processor makes of `records` (one fresh window, default core config)."""
    # A smaller window than the default: same verdicts while nothing is evicted (the tests'
    # streams hold far fewer messages), and much cheaper to create.
    core = Core(Window(1_000_000, 86_400_000), CoreConfig())
    outputs, dead = [], []
    for i in range(0, len(records), batch):
        result = core.process(records[i : i + batch])
        outputs += result.outputs
        dead += result.dead_letters
    return BatchResult(outputs, dead)


def interleaved(records: Sequence[InputRecord], seed: int) -> list[InputRecord]:
    """`records` in another order that keeps each partition's order (a random merge)."""
    rng = random.Random(seed)
    queues: dict[int, list[InputRecord]] = {}
    for r in records:
        queues.setdefault(r.partition, []).append(r)
    heads = dict.fromkeys(queues, 0)
    out = []
    while heads:
        p = rng.choice(sorted(heads))
        out.append(queues[p][heads[p]])
        heads[p] += 1
        if heads[p] == len(queues[p]):
            del heads[p]
    return out


def corpus_records(
    seed: int, receipts: int, truth: corpus.Truth | None = None
) -> list[InputRecord]:
    """A corpus from benchmarks/corpus.py, time-stamped in the last hour.

    Recent timestamps matter: the processor rebuilds its window from the output records of the
    last `window_ttl_s`, found by timestamp, and old records could be deleted by retention.
    """
    start = int(time.time() * 1000) - 3_600_000
    return list(corpus.generate(seed, receipts, start=start, span_s=1800.0, truth=truth))


class Placement:
    """Records put by hand on partitions of a fresh topic, at the offsets the broker will give
    them (`send` checks those)."""

    def __init__(self, partitions: int) -> None:
        self._next = [0] * partitions

    def place(self, records: Sequence[InputRecord], partition: int) -> list[InputRecord]:
        first = self._next[partition]
        self._next[partition] += len(records)
        return [r._replace(partition=partition, offset=first + i) for i, r in enumerate(records)]


def records_with_events(seed: int, receipts: int, topic: str, count: int) -> list[InputRecord]:
    """The first `count` records of a corpus that each give events alone (good receipt bodies
    only), planned on partition 0 of `topic`."""
    pool = [r for r in corpus_records(seed, receipts) if expected([r]).outputs]
    return plan(pool, topic, 1)[:count]


class Stream(NamedTuple):
    """A test's topics, a corpus planned onto its raw topic, and what is expected of it."""

    topics: Topics
    records: list[InputRecord]
    want: BatchResult


async def corpus_stream(
    bootstrap: str,
    name: str,
    seed: int,
    receipts: int,
    *,
    raw: int = 4,
    out: int = 6,
    dlq: int = 2,
    truth: corpus.Truth | None = None,
) -> Stream:
    """Fresh topics (see `make_topics`) and a corpus (`corpus_records`) planned onto the raw
    topic, with what a correct processor makes of it."""
    topics = await make_topics(bootstrap, name, raw=raw, out=out, dlq=dlq)
    records = plan(corpus_records(seed, receipts, truth), topics.raw, raw)
    return Stream(topics, records, expected(records))


# ---------------------------------------------------------------------------- produce / consume


def new_producer(bootstrap: str, max_request_size: int = 1024 * 1024) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=max_request_size,
    )


async def send(producer: AIOKafkaProducer, records: Sequence[InputRecord]) -> None:
    """Send `records` to their topic and partition, in order, with their timestamps; return
    once all are acknowledged at the offsets `plan` gave them."""
    futures = [
        await producer.send(
            r.topic,
            r.value,
            partition=r.partition,
            timestamp_ms=r.timestamp_ms,
            headers=list(r.headers),
        )
        for r in records
    ]
    metas = await asyncio.gather(*futures)
    for r, meta in zip(records, metas, strict=True):
        assert (meta.partition, meta.offset) == (r.partition, r.offset), (r[:4], meta)


async def produce(
    bootstrap: str,
    records: Sequence[InputRecord],
    *,
    max_request_size: int = 1024 * 1024,
    spread_s: float = 0.0,
    until: asyncio.Event | None = None,
) -> int:
    """Produce `records` (see `send`); with `spread_s`, in small steps over about that many
    seconds (a live stream, not a backlog). With `until`, stop after the step during which it
    was set. The number of records sent (a prefix of `records`)."""
    producer = new_producer(bootstrap, max_request_size)
    steps = max(1, int(spread_s / 0.1))
    size = min(2000, max(1, -(-len(records) // steps)))
    sent = 0
    await producer.start()
    try:
        started = time.monotonic()
        for i, part in enumerate(chunks(records, size)):
            await send(producer, part)
            sent += len(part)
            if until is not None and until.is_set():
                break
            if spread_s:
                pause = started + (i + 1) * spread_s / steps - time.monotonic()
                await asyncio.sleep(max(0.0, pause))
    finally:
        await producer.stop()
    return sent


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                offsets = await admin.list_consumer_group_offsets(group)
                break
            except KafkaError as exc:  # e.g. the coordinator is still loading
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def drain(
    bootstrap: str,
    topic: str,
    *,
    count: int | None = None,
    idle_s: float = 1.0,
    timeout_s: float = 60.0,
    isolation_level: str = "read_uncommitted",
    codecs: set[int] | None = None,
) -> list[ConsumerRecord]:
    """Every record of `topic` from the start: stop after `count` records, or once nothing new
    arrived for `idle_s` (and, without `count`, the end offsets seen at the call are reached).
    `codecs` gets the compression codec of every record batch read."""
    if codecs is not None:
        with batch_codecs(codecs):
            return await drain(
                bootstrap,
                topic,
                count=count,
                idle_s=idle_s,
                timeout_s=timeout_s,
                isolation_level=isolation_level,
            )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_WAIT_MS,
        max_partition_fetch_bytes=BIG,
        fetch_max_bytes=4 * BIG,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"topic {topic} has no partitions"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for messages in batches.values():
                out += messages
            if batches:
                last = time.monotonic()
            if count is not None and len(out) >= count:
                break
            if count is None:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps) and time.monotonic() - last > min(
                    idle_s, 0.2
                ):
                    break
            elif time.monotonic() - last > idle_s:
                break
        else:
            raise AssertionError(f"draining {topic}: timed out with {len(out)} records")
        return out
    finally:
        await consumer.stop()


@contextlib.contextmanager
def batch_codecs(codecs: set[int]) -> Iterator[None]:
    """While in it, the compression codec of each record batch this process's consumers fetch
    goes into `codecs` (read as the fetcher splits the batches)."""
    split: Any = aiokafka_fetcher.MemoryRecords

    class Seen(split):  # type: ignore[misc]
        def next_batch(self, *args: Any) -> Any:
            batch = super().next_batch(*args)
            if batch is not None:
                codecs.add(batch.compression_type)
            return batch

    aiokafka_fetcher.MemoryRecords = Seen
    try:
        yield
    finally:
        aiokafka_fetcher.MemoryRecords = split


# ------------------------------------------------------------------------------ the processor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One `python -m pipeline run` subprocess; its stderr JSON log lines land in `logs`."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PIPELINE_") and k != "KAFKA_BOOTSTRAP_SERVERS"
        }
        base.update(env or {})
        self.args = args
        self.started_at = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args],
            cwd=ROOT,
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: teardown kills workers too
        )
        self.logs: list[dict[str, Any]] = []
        self.stdout: list[bytes] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_err(self) -> None:
        assert self.popen.stderr is not None
        for raw in self.popen.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                doc = json.loads(line)
                if not isinstance(doc, dict):
                    raise ValueError
            except ValueError:
                doc = {"raw": line}
            with self._cond:
                self.logs.append(doc)
                self._cond.notify_all()

    def _read_out(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            self.stdout.append(raw)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def lines(self) -> list[dict[str, Any]]:
        """Every log line so far, in order."""
        with self._cond:
            return list(self.logs)

    def messages(self, msg: str) -> list[dict[str, Any]]:
        with self._cond:
            return [d for d in self.logs if d.get("msg") == msg]

    def text(self) -> str:
        with self._cond:
            return "\n".join(json.dumps(d) for d in self.logs)

    async def wait_log(
        self,
        match: str | Callable[[dict[str, Any]], bool],
        timeout: float = 30.0,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first log line (from index `after`) that matches; fails if the process exits."""
        pred = (lambda d: d.get("msg") == match) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                for doc in self.logs[after:]:
                    if pred(doc):
                        return doc
            if not self.alive():
                for t in self._threads:
                    t.join(timeout=2)
                with self._cond:
                    for doc in self.logs[after:]:
                        if pred(doc):
                            return doc
                raise AssertionError(
                    f"processor exited ({self.popen.returncode}) before logging {match!r}:\n"
                    + self.text()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {match!r} log within {timeout}s:\n" + self.text()[-4000:])
            await asyncio.sleep(0.02)

    async def metrics_port(self, timeout: float = 30.0) -> int:
        return int((await self.wait_log("metrics served", timeout))["port"])

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    async def wait(self, timeout: float) -> int:
        """The exit code, waiting at most `timeout` seconds (fails after)."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"processor {self.pid} still running after {timeout}s:\n" + self.text()[-4000:]
                )
            await asyncio.sleep(0.02)
        for t in self._threads:
            t.join(timeout=5)
        return int(self.popen.returncode)

    async def stop(self, timeout: float = 15.0) -> int:
        self.signal(signal.SIGTERM)
        return await self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        for t in self._threads:
            t.join(timeout=5)

    def kill_group(self) -> None:
        """SIGKILL the whole process group (workers included); for test teardown."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def crashes(self) -> list[dict[str, Any]]:
        """Lines that betray a crash or an error of ours: the pipeline's ERROR/CRITICAL lines
        or exceptions, and any text that is not a JSON log line (a traceback). aiokafka's own
        lines are not counted: it logs routine retries (coordinator not ready yet) as ERROR."""
        with self._cond:
            return [
                d
                for d in self.logs
                if "raw" in d
                or (
                    str(d.get("logger", "")).startswith("pipeline")
                    and (d.get("level") in ("ERROR", "CRITICAL") or "exc" in d)
                )
            ]


def run_args(
    bootstrap: str, topics: Topics, *, group: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    return [
        "run",
        "--bootstrap-servers",
        bootstrap,
        "--input-topics",
        topics.raw,
        "--output-topic",
        topics.out,
        "--dead-letter-topic",
        topics.dlq,
        "--group-id",
        group or topics.group,
        "--metrics-port",
        "0",
        "--log-level",
        "INFO",
        "--fetch-max-wait-ms",
        str(FETCH_WAIT_MS),
        "--startup-timeout-s",
        "30",
        # Snapshots off unless a test is about them (a restart would read them otherwise).
        "--state-dir",
        "",
        *extra,
    ]


class Spawn(Protocol):
    """The `spawn` fixture: starts a processor subprocess."""

    def __call__(self, args: list[str], env: dict[str, str] | None = None) -> Proc: ...


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start processor subprocesses; any still running at the end of the test is killed."""
    procs: list[Proc] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(args, env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.kill_group()


async def wait_committed(
    bootstrap: str,
    group: str,
    topic: str,
    *,
    output: str | None = None,
    timeout: float = 60.0,
    procs: Sequence[Proc] = (),
) -> dict[int, int]:
    """Wait until `group` has committed the end of every partition of `topic` and, with
    `output` under topology partitioned, the dedupe stage (`<group>.dedupe`) the end of the
    repartition topic `<output>.by-message`.

    Offsets are committed only after the outputs they caused are acknowledged, so from then on
    the output and dead-letter topics are complete.
    """
    done = await _wait_group(bootstrap, group, topic, timeout, procs)
    if output is not None and await end_offsets(bootstrap, f"{output}.by-message"):
        await _wait_group(bootstrap, f"{group}.dedupe", f"{output}.by-message", timeout, procs)
    return done


async def _wait_group(
    bootstrap: str, group: str, topic: str, timeout: float, procs: Sequence[Proc]
) -> dict[int, int]:
    ends = await end_offsets(bootstrap, topic)
    deadline = time.monotonic() + timeout
    while True:
        done = await committed(bootstrap, group, topic)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return done
        for proc in procs:
            assert proc.alive(), (
                f"processor exited ({proc.popen.returncode}):\n{proc.text()[-4000:]}"
            )
        if time.monotonic() > deadline:
            tails = "\n".join(proc.text()[-3000:] for proc in procs)
            raise AssertionError(
                f"group {group} committed {done} of {ends} within {timeout}s; logs:\n{tails}"
            )
        await asyncio.sleep(0.1)


async def wait_processed(
    bootstrap: str, topics: Topics, *, procs: Sequence[Proc], timeout: float = 60.0
) -> dict[int, int]:
    """`wait_committed` for the test's group, raw topic and output: both stages are done."""
    return await wait_committed(
        bootstrap, topics.group, topics.raw, output=topics.out, timeout=timeout, procs=procs
    )


async def wait_outputs(
    bootstrap: str, topic: str, at_least: int, procs: Sequence[Proc], timeout: float = 60.0
) -> int:
    """Wait until `topic` holds `at_least` records (the processors staying alive); the count."""
    deadline = time.monotonic() + timeout
    while True:
        done = sum((await end_offsets(bootstrap, topic)).values())
        if done >= at_least:
            return done
        for proc in procs:
            assert proc.alive(), proc.text()[-3000:]
        assert time.monotonic() < deadline, f"{done} outputs, waiting for {at_least}"
        await asyncio.sleep(0.01)


_PARTITION = re.compile(r"partition=(\d+)\)")


def owned(proc: Proc, topic: str) -> set[int]:
    """Partitions of `topic` the instance holds, from its last "partitions assigned" line."""
    lines = [d for d in proc.messages("partitions assigned") if topic in str(d["partitions"])]
    return {int(p) for p in _PARTITION.findall(str(lines[-1]["partitions"]))} if lines else set()


async def wait_spread(
    procs: Sequence[Proc], topic: str, partitions: int, timeout: float = 60.0
) -> list[set[int]]:
    """Wait until every member owns some partitions of `topic`, together all of them, each
    once; what each owns."""
    deadline = time.monotonic() + timeout
    while True:
        sets = [owned(p, topic) for p in procs]
        if (
            all(sets)
            and sum(map(len, sets)) == partitions
            and len(set().union(*sets)) == partitions
        ):
            return sets
        assert all(p.alive() for p in procs), "".join(p.text()[-2000:] for p in procs)
        assert time.monotonic() < deadline, (sets, *(p.text()[-2000:] for p in procs))
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------------------------ checking


def header_dict(headers: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    return dict(headers)


def check_outputs(got: Sequence[ConsumerRecord], want: Sequence[Any], out_partitions: int) -> None:
    """`got` (output topic) holds exactly the expected events, once each, keyed, headed and
    partitioned as the Kafka contract says."""
    from pipeline.kafka import partition_for

    want_pairs = Counter((o.key, o.value) for o in want)
    got_pairs = Counter((m.key, m.value) for m in got)
    missing = want_pairs - got_pairs
    extra = got_pairs - want_pairs
    assert not missing and not extra, (
        f"{len(got)} records for {len(want)} expected: {sum(missing.values())} missing "
        f"(e.g. {list(missing)[:2]}), {sum(extra.values())} unexpected (e.g. {list(extra)[:2]})"
    )
    identities: Counter[tuple[str, str | None, str, str]] = Counter()
    want_headers = {(o.key, o.value): o.headers for o in want}
    for m in got:
        event = json.loads(m.value)
        assert m.key == f"{event['provider']}:{event['message_key']}".encode()
        assert list(m.headers) == list(want_headers[m.key, m.value])
        assert header_dict(m.headers) == {
            "event_id": event["event_id"].encode(),
            "provider": event["provider"].encode(),
            "status": event["status"].encode(),
        }
        assert m.partition == partition_for(m.key, out_partitions), (m.key, m.partition)
        identities[event["provider"], event["account"], event["message_key"], event["status"]] += 1
    dupes = [k for k, n in identities.items() if n > 1]
    assert not dupes, f"{len(dupes)} identities emitted twice, e.g. {dupes[:3]}"


def dead_letter_view(value: bytes, headers: Iterable[tuple[str, bytes]]) -> tuple[Any, ...]:
    return (value, tuple((k, bytes(v) if v is not None else None) for k, v in headers))


#: The headers a dead letter ends with, in this order (after the original record's own).
DEAD_LETTER_HEADERS = [
    "error.class",
    "error.message",
    "source.topic",
    "source.partition",
    "source.offset",
]


def check_dead_letters(got: Sequence[ConsumerRecord], want: Sequence[Any]) -> None:
    """Dead letters: the original bytes and headers, plus the reason and source headers."""
    want_views = Counter(dead_letter_view(d.value, d.headers) for d in want)
    got_views = Counter(dead_letter_view(m.value, m.headers) for m in got)
    missing, extra = want_views - got_views, got_views - want_views
    assert not missing and not extra, (
        f"dead letters: {len(got)} for {len(want)} expected; "
        f"missing {[(v[0][:60], v[1][-5:]) for v in list(missing)[:2]]}, "
        f"unexpected {[(v[0][:60], v[1][-5:]) for v in list(extra)[:2]]}"
    )
    for m in got:
        names = [k for k, _ in m.headers]
        assert names[-5:] == DEAD_LETTER_HEADERS, names


def check_replayed_dead_letters(got: Sequence[ConsumerRecord], want: Sequence[Any]) -> None:
    """`check_dead_letters` after batches may have been processed again (a kill, a lost broker,
    a rebalance): dead letters are at least once, so each distinct one is checked once."""
    check_dead_letters(list({dead_letter_view(m.value, m.headers): m for m in got}.values()), want)


def chunks(items: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def scrape(port: int, path: str = "/metrics", timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def wait_ready(proc: Proc, timeout: float = 30.0) -> None:
    """Until the instance's /readyz answers 200: every stage assigned and its windows restored
    (the dedupe stage restores after its assignment is logged, between batches)."""
    port = await proc.metrics_port()
    deadline = time.monotonic() + timeout
    while (await asyncio.to_thread(scrape, port, "/readyz"))[0] != 200:
        assert proc.alive(), proc.text()[-3000:]
        assert time.monotonic() < deadline, f"not ready within {timeout} s"
        await asyncio.sleep(0.05)


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Prometheus text → {name: {sorted label pairs: value}}."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    pattern = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
    label = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = pattern.match(line)
        assert m, f"bad exposition line {line!r}"
        labels = tuple(sorted(label.findall(m.group(2) or "")))
        out.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return out


async def group_members(bootstrap: str, group: str) -> list[str]:
    """Member ids the group coordinator currently holds for `group`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return [m[0] for g in described for m in g.groups[0][5]] if described else []


async def evict_members(bootstrap: str, group: str, members: Sequence[str]) -> None:
    """Remove `members` (of SIGKILLed processes) from `group` with LeaveGroup on their behalf.

    This is what the coordinator does by itself once their session times out (aiokafka's
    default is 10 s); doing it at once only saves that wait. The dead processes can do nothing
    either way: their uncommitted work is what the tests check.
    """
    from aiokafka.protocol.group import LeaveGroupRequest

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        node = await admin.find_coordinator(group)
        for member in members:
            response = await admin._send_request_to_node(node, LeaveGroupRequest(group, member))
            assert response.error_code in (0, 25), response  # 25: member already gone
    finally:
        await admin.close()


class RestartableKafka(LocalKafka):
    """A dedicated LocalKafka that restarts on the *same* ports with the same data directory.

    LocalKafka keeps a caller-given data directory across stop/start but picks new free ports
    on every start, so clients holding the old bootstrap address could never reconnect. Until
    LocalKafka has a `restart()` of its own, this pins the ports of the relaunch by handing
    `_launch` the previous ones.
    """

    #: The ports `down` leaves for `up`.
    _pinned: tuple[int, int] | None = None

    def down(self) -> None:
        """Stop the broker (SIGTERM: a clean shutdown), keeping its ports and data for `up`."""
        data = self.data_dir
        assert self.running and data is not None and self._given_dir is not None
        voters = (data / "server.properties").read_text().split("controller.quorum.voters=1@")[1]
        self._pinned = (self._port, int(voters.split("\n")[0].rsplit(":", 1)[1]))
        self.stop()

    def up(self) -> str:
        assert self._pinned is not None
        port, controller = self._pinned
        with mock.patch.object(broker_module, "_free_ports", lambda count: [port, controller]):
            bootstrap = self.start()
        assert bootstrap == f"127.0.0.1:{port}"
        return bootstrap

    def restart(self, down_s: float = 0.0) -> str:
        self.down()
        time.sleep(down_s)
        return self.up()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[RestartableKafka]:
    """A broker of this test alone (the shared one must not go down under other tests)."""
    with RestartableKafka(data_dir=tmp_path / "kafka") as kafka:
        yield kafka


#: Rank of the statuses that are not final (a final ranks 4): schemas.RANK, written out.
STATE_RANK = {"PENDING": 1, "SENT": 2, "UNKNOWN": 3}


def check_states(out: Sequence[ConsumerRecord], states: Sequence[ConsumerRecord]) -> int:
    """Every message's newest state record (by version) is its events folded in order; the
    versions of a message never go back along its partition; state and events share key and
    partition. Returns the number of messages."""
    events: dict[bytes, list[dict[str, Any]]] = {}
    partition_of: dict[bytes, int] = {}
    for m in sorted(out, key=lambda m: (m.partition, m.offset)):
        events.setdefault(m.key, []).append(json.loads(m.value))
        partition_of[m.key] = m.partition
    newest: dict[bytes, dict[str, Any]] = {}
    for m in sorted(states, key=lambda m: (m.partition, m.offset)):
        state = json.loads(m.value)
        assert m.partition == partition_of[m.key], m.key
        before = newest.get(m.key)
        assert before is None or state["version"] > before["version"], m.key
        newest[m.key] = state
    assert set(newest) == set(events)
    for key, state in newest.items():
        mine = events[key]
        assert [s["status"] for s in state["statuses"]] == [e["status"] for e in mine], key
        assert [s["event_id"] for s in state["statuses"]] == [e["event_id"] for e in mine]
        best = None
        for e in mine:
            if best is None or STATE_RANK.get(e["status"], 4) > STATE_RANK.get(best, 4):
                best = e["status"]
        assert state["status"] == best
        finals = {e["status"] for e in mine if e["status"] not in STATE_RANK}
        assert state["conflict"] == (len(finals) > 1)
        assert (state["provider"], state["message_key"]) == (
            mine[0]["provider"],
            mine[0]["message_key"],
        )
    return len(newest)
