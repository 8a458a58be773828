"""The Kafka stream processor: a thin loop around the I/O-free core.

One batch at a time: `getmany` → `Core.process` → output and dead-letter records written with the
producer's batch API (one future per partition batch, not per record) → wait for every ack →
commit the batch's offsets. Nothing is committed before the broker holds what it caused, so a
crash at any point replays at most the uncommitted batch, and the dedupe window (rebuilt from the
output topic, and kept current by following it) drops what was already emitted.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from schemas import PROVIDER_INDEX, PROVIDERS, STATUS_INDEX

from .._config import Settings, core_config
from .._metrics import Registry, serve_metrics, standard_metrics
from ..core._batch import Core, parse_routes
from ..core._window import Window, message_hash
from ._fetch import input_records, install
from ._limits import TopicLimits, topic_limits
from ._partitioner import partitions_for
from ._sink import PRODUCER_BATCH_BYTES, Sent, Sink
from ._topics import TopicProblem, check_topics, matching_topics

log = logging.getLogger("pipeline.kafka")


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
        )
    return options


class BrokerUnreachable(Exception):
    """The broker did not answer within the start-up timeout."""


async def start_with_retry(client: Any, what: str, settings: Settings) -> None:
    """Start an aiokafka client, waiting for the broker with a bounded, logged retry."""
    deadline = time.monotonic() + settings.startup_timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await client.start()
            return
        except KafkaConnectionError as exc:
            if time.monotonic() >= deadline:
                raise BrokerUnreachable(
                    f"Kafka at {settings.bootstrap_servers} not reachable after "
                    f"{settings.startup_timeout_s}s ({what}): {exc}"
                ) from None
            log.warning(
                "waiting for Kafka",
                extra={"bootstrap": settings.bootstrap_servers, "client": what, "attempt": attempt},
            )
            await anyio.sleep(min(2.0, 0.2 * attempt))


# Header values of our own output records, straight to the window's codes (no decoding).
_STATUS_CODES: Final = {s.encode(): i for s, i in STATUS_INDEX.items()}
_PROVIDER_CODES: Final = {p.encode(): i for p, i in PROVIDER_INDEX.items()}


class OutputFollower:
    """Keeps the window in step with the output topic: the dedupe log of every instance.

    On start it loads the last `ttl` of output records; afterwards it keeps reading, so events
    emitted by other instances of the group (or other workers) reach this window too. It reads
    keys and headers only: the values are never decoded.
    """

    def __init__(self, settings: Settings, window: Window) -> None:
        self.settings = settings
        self.window = window
        self.consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        # Fix (issue 5, see Processor.run_batch): end offsets asked on the follower's own
        # connection wait behind its long-polling fetch (up to 500 ms); this client only
        # ever sends ListOffsets, so its answers come at once.
        self.probe = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
        self.loaded = 0

    async def start(self) -> None:
        await start_with_retry(self.consumer, "output follower", self.settings)
        await start_with_retry(self.probe, "output follower probe", self.settings)
        topic = self.settings.output_topic
        parts = self.consumer.partitions_for_topic(topic)
        if parts is None:
            await self.consumer._client.force_metadata_update()
            parts = self.consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        if not tps:
            return
        cutoff = int(time.time() * 1000) - self.settings.window_ttl_s * 1000
        found = await self.consumer.offsets_for_times({tp: cutoff for tp in tps})
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            hit = found.get(tp)
            self.consumer.seek(tp, hit.offset if hit is not None else ends[tp])

    async def catch_up(self, quiet: bool = False) -> None:
        """Return once everything on the output topic up to now is in the window."""
        started = time.monotonic()
        tps = list(self.consumer.assignment())
        if not tps:
            return
        ends = await self.probe.end_offsets(tps)
        before = self.loaded
        while True:
            behind = [tp for tp in tps if await self.consumer.position(tp) < ends[tp]]
            if not behind:
                break
            # Quiet (per batch) catch-ups run beside `follow()`, which may take the records
            # from under this poll: look at the positions again soon rather than in 500 ms.
            await self._poll(10 if quiet else 500)
        if quiet:
            return
        log.info(
            "window rebuilt from output topic",
            extra={
                "events": self.loaded - before,
                "messages": len(self.window),
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    async def _poll(self, timeout_ms: int) -> None:
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=50_000)
        hashes: list[int] = []
        statuses: list[int] = []
        providers: list[int] = []
        now_ms = 0
        for messages in batches.values():
            for m in messages:
                status = provider = None
                for name, value in m.headers:
                    if name == "status":
                        status = _STATUS_CODES.get(value)
                    elif name == "provider":
                        provider = _PROVIDER_CODES.get(value)
                if status is None or provider is None or m.key is None:
                    continue  # not one of ours; the output topic should hold nothing else
                hashes.append(message_hash(m.key))
                statuses.append(status)
                providers.append(provider)
                if m.timestamp > now_ms:
                    now_ms = m.timestamp
        if hashes:
            self.window.load_batch(hashes, statuses, providers, now_ms)
            self.loaded += len(hashes)

    async def follow(self, shared: Callable[[], bool]) -> None:
        """Keep reading the output topic while other members own input partitions.

        Alone in the group, this instance already holds everything it emitted, and re-reading
        its own output costs a quarter of its CPU: it then only keeps its position, and a
        later catch-up reads what it skipped.
        """
        while True:
            if shared():
                await self._poll(200)
            else:
                await anyio.sleep(0.5)

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.probe.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit what is done before partitions go; catch the window up before new ones come."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # The lock is held while a batch is in hand: waiting for it means the batch is committed.
        async with self.processor.lock:
            self.processor.ready.clear()
            log.info("partitions revoked", extra={"partitions": sorted(str(tp) for tp in revoked)})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # aiokafka may fetch for the new assignment before this returns; `ready` holds the
        # batch back until the window has everything the previous owners emitted.
        await self.processor.follower.catch_up()
        self.processor.ready.set()
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})


class Processor:
    def __init__(self, settings: Settings, core: Core) -> None:
        self.settings = settings
        self.core = core
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.stopping = anyio.Event()
        install()  # records aiokafka cannot parse become dead letters (see _fetch.py)
        self.follower = OutputFollower(settings, core.window)
        options = kafka_options(settings)

        def producer(batch_bytes: int) -> AIOKafkaProducer:
            return AIOKafkaProducer(
                **options,
                enable_idempotence=True,
                acks="all",
                compression_type=None if settings.compression == "none" else settings.compression,
                linger_ms=settings.linger_ms,
                max_batch_size=batch_bytes,
                max_request_size=8 * PRODUCER_BATCH_BYTES,
            )

        self.consumer = AIOKafkaConsumer(
            **options,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=settings.isolation_level,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        self.sink = Sink(producer, settings.dead_letter_topic)
        self.limits: dict[str, TopicLimits] = {}
        self.batches = 0
        self.positions: dict[TopicPartition, int] = {}
        self.on_batch: Callable[[float, float, dict[TopicPartition, int]], None] | None = None

    async def check_topics(self) -> None:
        """Stop start-up on a missing or forbidden topic; learn the broker's record limits."""
        settings = self.settings
        admin = AIOKafkaAdminClient(**kafka_options(settings))
        await start_with_retry(admin, "admin", settings)
        try:
            roles = {t: "input (--input-topics)" for t in settings.input_topics}
            if settings.input_pattern:
                roles = {}
                if not await matching_topics(admin, settings.input_pattern):
                    log.warning(
                        "no topic matches the input pattern yet",
                        extra={"pattern": settings.input_pattern},
                    )
            roles[settings.output_topic] = "output (--output-topic)"
            roles[settings.dead_letter_topic] = "dead-letter (--dead-letter-topic)"
            await check_topics(admin, roles)
            self.limits = await topic_limits(
                admin, [settings.output_topic, settings.dead_letter_topic]
            )
        finally:
            await admin.close()

    async def start(self) -> None:
        await self.check_topics()
        await self.sink.start(
            self.limits, lambda producer: start_with_retry(producer, "producer", self.settings)
        )
        await self.follower.start()
        await self.follower.catch_up()
        listener = _Rebalance(self)
        if self.settings.input_pattern:
            self.consumer.subscribe(pattern=self.settings.input_pattern, listener=listener)
        else:
            self.consumer.subscribe(self.settings.input_topics, listener=listener)
        await start_with_retry(self.consumer, "consumer", self.settings)
        log.info(
            "started",
            extra={
                "group": self.settings.group_id,
                "inputs": self.settings.input_pattern or self.settings.input_topics,
                "output": self.settings.output_topic,
                "dead_letter": self.settings.dead_letter_topic,
            },
        )

    def shares_inputs(self) -> bool:
        """True when other members of the group own some of the input partitions."""
        consumer = self.consumer
        total = sum(len(consumer.partitions_for_topic(t) or ()) for t in consumer.subscription())
        return len(consumer.assignment()) < total

    async def run_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        # Fix (issue 5, tests/integration/test_two_instances.py): a provider retry fetched by
        # this instance right after another instance's events for the original were
        # acknowledged was emitted a second time: `follow()` had not read them yet. When the
        # input is shared, the window first takes in the output topic up to its current end
        # (one ListOffsets round trip; the follower usually has everything already).
        if self.shares_inputs():
            await self.follower.catch_up(quiet=True)
        records, unreadable = input_records(batches, self.core.decoder.config.dead_letter_max_bytes)
        result = self.core.process(records)
        if unreadable:
            result.dead_letters.extend(unreadable)
            self.core.stats.dead_letters.update(d.error_class for d in unreadable)
        sent: list[Sent] = []
        if result.outputs:
            topic = self.settings.output_topic
            count = await self.sink.partition_count(topic)
            parts = partitions_for([o.key for o in result.outputs], count)
            sent += await self.sink.send(topic, result.outputs, parts)
        if result.dead_letters:
            topic = self.settings.dead_letter_topic
            count = await self.sink.partition_count(topic)
            dead = [(None, d.value, d.headers, d.timestamp_ms) for d in result.dead_letters]
            parts = [i % count for i in range(len(dead))]
            sent += await self.sink.send(topic, dead, parts)
        # Every record acknowledged, or its dead letter (what the broker refuses): then commit.
        await self.sink.flush(sent)
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
        commit_started = time.perf_counter()
        await self.consumer.commit(offsets)
        self.positions.update(offsets)
        done = time.perf_counter()
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(done - started, done - commit_started, offsets)

    async def run(self) -> None:
        fetch_wait = self.settings.fetch_max_wait_ms
        max_records = self.settings.batch_max_records
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=fetch_wait, max_records=max_records)
            if not batches:
                continue
            await self._acquire_ready()
            try:
                # A rebalance may have run while the batch was fetched: drop what is not ours.
                owned = self.consumer.assignment()
                batches = {tp: m for tp, m in batches.items() if tp in owned and m}
                if batches:
                    await self.run_batch(batches)
            finally:
                self.lock.release()

    async def _acquire_ready(self) -> None:
        """Take the batch lock at a moment when no rebalance is between revoke and assign."""
        while True:
            await self.ready.wait()
            await self.lock.acquire()
            if self.ready.is_set():
                return
            self.lock.release()

    async def stop(self) -> None:
        # Order matters: leave the group (commits are already done), then flush the producer.
        # Each is stopped even if another fails (or was never started: a stop during start-up).
        for client in (self.consumer, self.sink, self.follower):
            try:
                await client.stop()
            except Exception as exc:
                log.warning(
                    "stop failed", extra={"client": type(client).__name__, "error": repr(exc)}
                )


async def _watch_signals(processor: Processor, startup: anyio.CancelScope) -> None:
    """First SIGTERM/SIGINT: finish the batch in hand and stop. During start-up (waiting for the
    broker, rebuilding the window) there is no batch: start-up is abandoned at once."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            processor.stopping.set()
            startup.cancel()
            return


def attach_metrics(registry: Registry, processor: Processor) -> None:
    """Export the counters the core and window already keep (read at scrape time, not per item)."""
    m = standard_metrics(registry)
    stats, window = processor.core.stats, processor.core.window
    m.records_in.attach(lambda: stats.records_in)
    m.receipts_in.attach(lambda: stats.receipts_in)
    m.events_out.attach(lambda: stats.events_out)
    m.dead_letters.attach(lambda: stats.dead_letters)
    m.skipped.attach(lambda: stats.skipped)
    m.unmapped_status.attach(lambda: stats.unmapped_statuses)
    m.duplicates.attach(lambda: dict(zip(PROVIDERS, window.counters.duplicates, strict=True)))
    m.stale.attach(lambda: dict(zip(PROVIDERS, window.counters.stale, strict=True)))
    m.window_evicted_by_count.attach(
        lambda: dict(zip(PROVIDERS, window.counters.evicted_by_count, strict=True))
    )
    m.window_expired.attach(lambda: dict(zip(PROVIDERS, window.counters.expired, strict=True)))
    m.window_messages.attach(lambda: {(): len(window)})
    consumer = processor.consumer

    def lag() -> dict[tuple[str, str], float]:
        result = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = processor.positions.get(tp)
            if high is not None and position is not None:
                result[tp.topic, str(tp.partition)] = max(0, high - position)
        return result

    m.consumer_lag.attach(lag)

    def on_batch(batch_s: float, commit_s: float, offsets: dict[TopicPartition, int]) -> None:
        m.batch_seconds.observe(batch_s)
        m.commit_seconds.observe(commit_s)
        m.batches.inc()

    processor.on_batch = on_batch


async def serve(
    settings: Settings, started: Callable[[Processor, int | None], Awaitable[None]] | None = None
) -> None:
    """Run one processor until SIGTERM/SIGINT; the batch in hand is finished and committed."""
    window = Window(settings.window_max_messages, settings.window_ttl_s * 1000)
    core = Core(window, core_config(settings))
    processor = Processor(settings, core)
    try:
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as startup:
                tg.start_soon(_watch_signals, processor, startup)
                await processor.start()
            if processor.stopping.is_set():
                tg.cancel_scope.cancel()
                return
            tg.start_soon(processor.follower.follow, processor.shares_inputs)
            port = None
            if settings.metrics_port is not None:
                registry = Registry()
                attach_metrics(registry, processor)
                port = await tg.start(serve_metrics, registry, settings.metrics_port)
                log.info("metrics served", extra={"port": port})
            if started is not None:
                await started(processor, port)
            await processor.run()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await processor.stop()
    log.info("stopped", extra={"batches": processor.batches})


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
    settings = msgspec.convert(settings_data, Settings)
    sys.exit(run_kafka(settings))


def _run_workers(settings: Settings) -> int:
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


def run_kafka(settings: Settings) -> int:
    """`python -m pipeline run` without --from: the Kafka stream processor."""
    from .._metrics import configure_logging

    configure_logging(settings.log_level)
    # aiokafka's own warnings (coordinator moves, retries) go out as the same JSON lines.
    ours, theirs = logging.getLogger("pipeline"), logging.getLogger("aiokafka")
    theirs.handlers[:] = ours.handlers
    theirs.setLevel(logging.WARNING)
    theirs.propagate = False
    theirs.addFilter(_RateLimit())
    parse_routes(settings.topic_map)
    if settings.workers > 1:
        return _run_workers(settings)
    try:
        anyio.run(serve, settings, backend="asyncio", backend_options={"use_uvloop": True})
    except (KafkaError, BrokerUnreachable, TopicProblem, BaseExceptionGroup) as exc:
        # Task groups wrap what their tasks raise; Kafka errors are reported, anything else is
        # a bug and keeps its traceback.
        if isinstance(exc, BaseExceptionGroup):
            known, rest = exc.split((KafkaError, BrokerUnreachable, TopicProblem))
            if rest is not None or known is None:
                raise
            exc = known.exceptions[0]
        if isinstance(exc, (BrokerUnreachable, TopicProblem)):
            print(f"error: {exc}", file=sys.stderr)
        log.error("kafka error", extra={"error": repr(exc)})
        # A missing or forbidden topic is a setting to fix (exit 2, as for bad config).
        return 2 if isinstance(exc, TopicProblem) else 1
    return 0


class _RateLimit(logging.Filter):
    """aiokafka logs every failed reconnect: thousands of lines a second while a broker is down.
    Each distinct message passes at most once per `every` seconds; the next says how many were
    held back."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self.seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = record.msg if isinstance(record.msg, str) else repr(record.msg)
        last, held = self.seen.get(key, (0.0, 0))
        if now - last < self.every:
            self.seen[key] = (last, held + 1)
            return False
        if len(self.seen) > 1000:
            self.seen.clear()
        self.seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {self.every:.0f}s)"
        return True
