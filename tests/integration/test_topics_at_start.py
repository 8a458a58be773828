"""Topics checked at start: a missing topic stops the processor at once,
with a one-line message that names it, not a bare UnknownTopicOrPartitionError 40 s later."""

from __future__ import annotations

import time

import pytest

from .conftest import Spawn, Topics, create_topics, run_args, unique

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


@pytest.mark.parametrize(
    ("missing", "role"),
    [
        ("raw", "input (--input-topics)"),
        ("out", "output (--output-topic)"),
        ("dlq", "dead-letter (--dead-letter-topic)"),
    ],
)
async def test_missing_topic_stops_startup_naming_it(
    kafka_bootstrap: str, spawn: Spawn, missing: str, role: str
) -> None:
    topics = Topics("absent", raw=2, out=2, dlq=1)
    gone = getattr(topics, missing)
    gone_renamed = unique("never-created")
    setattr(topics, missing, gone_renamed)
    await create_topics(kafka_bootstrap, {t: n for t, n in topics.partitions.items() if t != gone})
    started = time.monotonic()
    proc = spawn(run_args(kafka_bootstrap, topics))
    code = await proc.wait(30)
    elapsed = time.monotonic() - started
    assert code == 2, proc.text()[-3000:]
    assert elapsed < 20, elapsed
    errors = [d["raw"] for d in proc.logs if d.get("raw", "").startswith("error:")]
    assert errors == [
        f"error: {role} topic {gone_renamed!r} does not exist (create it, or fix the setting)"
    ], proc.text()[-3000:]
    assert "Traceback" not in proc.text()
