"""`python -m pipeline topics create` against the real broker, run as an operator runs it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from .conftest import ROOT, unique

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


def topics_create(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "topics", "create", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def names(stem: str) -> tuple[str, str, str]:
    return f"{stem}-raw", f"{stem}-out", f"{stem}-dlq"


def flags(bootstrap: str, stem: str) -> list[str]:
    raw, out, dlq = names(stem)
    return [
        *("--bootstrap-servers", bootstrap),
        *("--input-topics", raw, "--output-topic", out, "--dead-letter-topic", dlq),
    ]


async def described(bootstrap: str, stem: str) -> dict[str, tuple[int, int]]:
    """Topics named `stem`*: partitions and replicas (listed first: describing a missing topic
    would let the broker auto-create it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        present = sorted(t for t in await admin.list_topics() if t.startswith(stem))
        entries = await admin.describe_topics(present) if present else []
    finally:
        await admin.close()
    return {
        e["topic"]: (len(e["partitions"]), len(e["partitions"][0]["replicas"])) for e in entries
    }


async def test_creates_the_three_topics_then_finds_them(kafka_bootstrap: str) -> None:
    stem = unique("topics-create")
    raw, out, dlq = names(stem)
    first = await asyncio.to_thread(
        topics_create, *flags(kafka_bootstrap, stem), "--partitions", "3"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"created {raw} (3 partitions, replication 1)",
        f"created {out} (3 partitions, replication 1)",
        f"created {dlq} (3 partitions, replication 1)",
    ]
    assert first.stderr == ""
    assert await described(kafka_bootstrap, stem) == {raw: (3, 1), out: (3, 1), dlq: (3, 1)}

    again = await asyncio.to_thread(topics_create, *flags(kafka_bootstrap, stem))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"exists {raw} (3 partitions)",
        f"exists {out} (3 partitions)",
        f"exists {dlq} (3 partitions)",
    ]
    # Nothing else was created, and what existed kept its 3 partitions (the default is 6).
    assert await described(kafka_bootstrap, stem) == {raw: (3, 1), out: (3, 1), dlq: (3, 1)}


async def test_default_partitions_and_no_input_topic_under_a_pattern(kafka_bootstrap: str) -> None:
    stem = unique("topics-pattern")
    _, out, dlq = names(stem)
    done = await asyncio.to_thread(
        topics_create, *flags(kafka_bootstrap, stem), "--input-pattern", f"{stem}-r.*"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"created {out} (6 partitions, replication 1)",
        f"created {dlq} (6 partitions, replication 1)",
    ]
    assert "input topics not created: --input-pattern" in done.stderr
    assert await described(kafka_bootstrap, stem) == {out: (6, 1), dlq: (6, 1)}


async def test_refused_replication_factor_exits_2_naming_the_topic(kafka_bootstrap: str) -> None:
    stem = unique("topics-refused")
    raw, _, _ = names(stem)
    done = await asyncio.to_thread(
        topics_create, *flags(kafka_bootstrap, stem), "--replication-factor", "3"
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: input (--input-topics) topic {raw!r}: Create failed"), line
    assert "replication factor of 3 cannot be reached" in line  # the broker's reason
    assert await described(kafka_bootstrap, stem) == {}


def test_unreachable_broker_exits_1_after_the_startup_timeout() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = topics_create("--bootstrap-servers", f"127.0.0.1:{port}", "--startup-timeout-s", "1")
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: Kafka at 127.0.0.1:{port} not reachable after 1s"), line
