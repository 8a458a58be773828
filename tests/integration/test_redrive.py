"""`python -m pipeline redrive` against the real broker: after a fix, the dead letters' receipts
come out once; a second redrive of the same range emits nothing new.

The dead letters are made by the processor itself, so they are in its exact envelope: a first
processor runs with a wrong setting (`--max-body-bytes 100`: every body is `BodyTooLarge`), is
stopped, and the fixed one (default limit, same group: it goes on after what the first committed)
takes over. The redrive copies the dead letters back to the raw topic, where the fixed
processor accepts them. Each record keeps its own headers (provider, endpoint, account, tz,
content-type), so the copies are routed exactly as the originals were.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import pytest
from aiokafka.structs import ConsumerRecord

from .conftest import (
    ROOT,
    Proc,
    RestartableKafka,
    Topics,
    corpus_records,
    drain,
    end_offsets,
    expected,
    make_topics,
    plan,
    produce,
    run_args,
    unique,
    wait_processed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def redrive(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "pipeline",
            "redrive",
            "--bootstrap-servers",
            bootstrap,
            "--startup-timeout-s",
            "30",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def summary(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("redrive: read")]
    return line


def events(records: list[ConsumerRecord]) -> Counter[tuple[bytes, bytes]]:
    """(key, event_id) of each output record: the copies' events differ from the originals'
    only in their `source` (the copy's own offset)."""
    return Counter((m.key, dict(m.headers)["event_id"]) for m in records)


async def test_redrive_after_a_fix_emits_the_receipts_once(
    kafka_bootstrap: str, spawn: Callable[..., Proc]
) -> None:
    topics = await make_topics(kafka_bootstrap, "redrive", raw=2, out=3, dlq=1)
    # Bodies the fixed processor takes whole (the corpus has some malformed ones too).
    pool = corpus_records(21, 300)
    records = plan(
        [r for r in pool if len(r.value) > 100 and not expected([r]).dead_letters], topics.raw, 2
    )
    want = events_of(records)
    assert len(want) > 50
    await produce(kafka_bootstrap, records)

    # The wrong setting: every body dead-lettered.
    bad = spawn(run_args(kafka_bootstrap, topics, extra=["--max-body-bytes", "100"]))
    await wait_processed(kafka_bootstrap, topics, procs=[bad])
    assert await bad.stop() == 0
    dead = await drain(kafka_bootstrap, topics.dlq, count=len(records))
    assert {dict(m.headers)["error.class"] for m in dead} == {b"BodyTooLarge"}
    assert not await drain(kafka_bootstrap, topics.out, idle_s=0.3)

    # The fix, then the redrive (default target: the first input topic).
    fixed = spawn(run_args(kafka_bootstrap, topics))
    common = ["--input-topics", topics.raw, "--dead-letter-topic", topics.dlq]
    first = await redrive(kafka_bootstrap, *common, "--progress-interval-s", "0.01")
    n = len(records)
    assert summary(first).startswith(
        f"redrive: read {n} dead letters from {topics.dlq!r}, selected {n}, "
        f"redriven {n} to {topics.raw!r}; per class (read/selected/redriven): "
        f"BodyTooLarge {n}/{n}/{n}; "
    ), first.stderr
    assert "redrive progress: read " in first.stderr
    await wait_processed(kafka_bootstrap, topics, procs=[fixed])
    out = await drain(kafka_bootstrap, topics.out)
    assert events(out) == want  # every receipt, once

    # Each copy: the original value, headers and timestamp, plus redriven.from; back on the
    # partition the original was on; keyless, as the original.
    raw = await drain(kafka_bootstrap, topics.raw, count=2 * n)
    originals = {(r.partition, r.offset): r for r in records}
    copies = [m for m in raw if any(k == "redriven.from" for k, _ in m.headers)]
    assert len(copies) == n
    for m in copies:
        src = dict(m.headers)["redriven.from"].decode()
        topic, dl_partition, dl_offset = src.rsplit(":", 2)
        assert topic == topics.dlq
        letter = dead[int(dl_offset)]
        assert (letter.partition, letter.offset) == (int(dl_partition), int(dl_offset))
        source = dict(letter.headers)
        original = originals[int(source["source.partition"]), int(source["source.offset"])]
        assert list(m.headers) == [*original.headers, ("redriven.from", src.encode())]
        assert m.value == original.value
        assert m.timestamp == original.timestamp_ms == letter.timestamp
        assert m.partition == original.partition
        assert m.key is None

    # The same range again (by offsets and by time this time): copied again, nothing new out.
    stamps = [m.timestamp for m in dead]
    ends = await end_offsets(kafka_bootstrap, topics.dlq)
    second = await redrive(
        kafka_bootstrap,
        *common,
        "--partition",
        "0",
        "--from-offset",
        "0",
        "--to-offset",
        str(ends[0] - 1),
        "--since",
        str(min(stamps)),
        "--until",
        str(max(stamps) + 1),
        "--error-class",
        "BodyTooLarge",
    )
    assert f"selected {n}, redriven {n} to " in summary(second)
    await wait_processed(kafka_bootstrap, topics, procs=[fixed])
    assert sum((await end_offsets(kafka_bootstrap, topics.raw)).values()) == 3 * n
    assert events(await drain(kafka_bootstrap, topics.out)) == want
    # The copies were dead-lettered by nobody: the fixed processor accepted them all.
    assert await end_offsets(kafka_bootstrap, topics.dlq) == ends

    # A class filter that selects nothing copies nothing.
    before = await end_offsets(kafka_bootstrap, topics.raw)
    none = await redrive(kafka_bootstrap, *common, "--error-class", "UnsafeXml")
    assert f"read {n} dead letters from {topics.dlq!r}, selected 0, redriven 0 " in summary(none)
    assert await end_offsets(kafka_bootstrap, topics.raw) == before
    # A dry run reports and writes nothing.
    dry = await redrive(kafka_bootstrap, *common, "--dry-run")
    assert f"; dry run: {n} would be redriven, nothing written" in summary(dry)
    assert await end_offsets(kafka_bootstrap, topics.raw) == before
    assert not fixed.crashes()


def events_of(records: list) -> Counter[tuple[bytes, bytes]]:  # type: ignore[type-arg]
    return Counter((o.key, dict(o.headers)["event_id"]) for o in expected(records).outputs)


async def test_a_missing_topic_exits_2_naming_it(kafka_bootstrap: str) -> None:
    topics = await make_topics(kafka_bootstrap, "redrive-missing", raw=1, out=1, dlq=1)
    missing = unique("redrive-no-such")
    result = await redrive(
        kafka_bootstrap, "--dead-letter-topic", topics.dlq, "--to-topic", missing
    )
    assert result.returncode == 2, result.stderr
    assert (
        f"target (--to-topic, default: first --input-topics) topic {missing!r} does not exist"
        in (result.stderr)
    )
    result = await redrive(
        kafka_bootstrap, "--dead-letter-topic", topics.dlq, "--to-topic", topics.raw,
        "--partition", "1",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--partition 1" in result.stderr


async def fill_dead_letters(bootstrap: str, dlq: str, raw: str, count: int) -> None:
    """`count` dead letters in the core's exact envelope, written by hand (fast)."""
    from aiokafka import AIOKafkaProducer

    from pipeline.core import InputRecord, dead_letter
    from pipeline.errors import UnknownFormat

    stamp = int(time.time() * 1000) - 60_000
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        futures = []
        for i in range(count):
            record = InputRecord(raw, 0, i, stamp + i, [("x-n", str(i).encode())], b"hello " * 20)
            d = dead_letter(record, UnknownFormat("body shape unknown"))
            futures.append(
                await producer.send(
                    dlq, d.value, key=d.key, headers=d.headers, timestamp_ms=d.timestamp_ms
                )
            )
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def start_and_signal(
    bootstrap: str, topics: Topics, *, before_term: Callable[[], None] = lambda: None
) -> tuple[int, float, str]:
    """Start a redrive, SIGTERM it at its first progress line (after `before_term`); its exit
    code, the seconds from the signal to its exit, and its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "redrive", "--bootstrap-servers", bootstrap,
         "--input-topics", topics.raw, "--dead-letter-topic", topics.dlq,
         "--progress-interval-s", "0.1", "--shutdown-timeout-s", "3", "--log-level", "WARNING"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("redrive progress:"):
                break
        before_term()
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.to_thread(proc.stderr.read)
        code = await asyncio.to_thread(proc.wait, 30)
        return code, time.monotonic() - signalled, "".join(lines) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_sigterm_stops_within_the_shutdown_timeout(own_broker: RestartableKafka) -> None:
    bootstrap = own_broker.bootstrap
    topics = await make_topics(bootstrap, "redrive-stop", raw=2, out=1, dlq=1)
    await fill_dead_letters(bootstrap, topics.dlq, topics.raw, 150_000)

    # Stopped with the broker answering: every copy sent is acknowledged, exit 0, and the
    # summary says what was not read.
    code, seconds, err = await start_and_signal(bootstrap, topics)
    assert code == 0, err
    assert seconds < 3
    last = err.splitlines()[-1]
    assert last.startswith(
        "redrive: read "
    ) and "; interrupted, not read: partition 0 offsets " in (last), err

    # Stopped with the broker frozen: the copies in flight cannot be acknowledged; the stop
    # gives up after --shutdown-timeout-s and exits 3.
    pid = own_broker.pid
    assert pid is not None
    try:
        code, seconds, err = await start_and_signal(
            bootstrap, topics, before_term=lambda: os.kill(pid, signal.SIGSTOP)
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert code == 3, err
    assert seconds < 3 + 1.5, seconds
    assert "copies not acknowledged within 3s" in err.splitlines()[-1], err
