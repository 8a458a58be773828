"""The metrics endpoint of a running processor: it answers while the stream flows, and its
counters agree with the topics and with what the corpus generator injected."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from benchmarks import corpus

from .conftest import (
    Spawn,
    corpus_records,
    corpus_stream,
    drain,
    make_topics,
    parse_metrics,
    plan,
    produce,
    run_args,
    scrape,
    wait_processed,
    wait_ready,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


def by_label(samples: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in samples.items()}


async def test_metrics_match_the_topics(kafka_bootstrap: str, spawn: Spawn) -> None:
    truth = corpus.Truth()
    topics, records, want = await corpus_stream(kafka_bootstrap, "metrics", 71, 30_000, truth=truth)
    assert len(want.outputs) == truth.emitted and truth.duplicates > 0

    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--batch-max-records", "100"]))
    port = await proc.metrics_port()
    # Both stages in their groups, assigned; then the dedupe stage's windows restored (between
    # its batches, after the assignment): ready.
    await proc.wait_log(
        lambda d: (
            {"route", "dedupe"} <= {m.get("stage") for m in proc.messages("partitions assigned")}
        ),
        timeout=30,
    )
    await wait_ready(proc)
    feed = asyncio.create_task(produce(kafka_bootstrap, records, spread_s=4.0))

    # While the stream flows: both endpoints answer, and the batch counter moves.
    seen_batches = []
    try:
        deadline = time.monotonic() + 30
        while not feed.done():
            status, body = await asyncio.to_thread(scrape, port, "/livez")
            assert (status, body) in ((200, "ok\n"), (200, "idle\n")), body
            status, body = await asyncio.to_thread(scrape, port, "/readyz")
            assert (status, body) == (200, "ok\n")
            status, body = await asyncio.to_thread(scrape, port, "/metrics")
            assert status == 200
            seen_batches.append(parse_metrics(body).get("pipeline_batches_total", {}).get((), 0))
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        await feed
    finally:
        feed.cancel()
    assert len(seen_batches) >= 5 and seen_batches == sorted(seen_batches), seen_batches
    assert len(set(seen_batches)) >= 3, seen_batches  # it moved while the stream flowed
    assert (await asyncio.to_thread(scrape, port, "/nope"))[0] == 404

    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    out = await drain(kafka_bootstrap, topics.out)
    dlq = await drain(kafka_bootstrap, topics.dlq)
    status, body = await asyncio.to_thread(scrape, port, "/metrics")
    assert status == 200
    m = parse_metrics(body)

    events = m["pipeline_events_out_total"]
    assert sum(events.values()) == len(out) == truth.emitted
    assert {(dict(k)["provider"], dict(k)["status"]): v for k, v in events.items()} == Counter(
        (dict(o.headers)["provider"].decode(), dict(o.headers)["status"].decode()) for o in out
    )
    dead = by_label(m["pipeline_dead_letters_total"], "error_class")
    assert dead == Counter(dict(d.headers)["error.class"].decode() for d in dlq)
    assert sum(dead.values()) == len(want.dead_letters) > 0
    # What the generator injected: duplicate and stale reports, receipts per provider.
    assert by_label(m["pipeline_duplicates_total"], "provider") == {
        p: float(n) for p, n in truth.duplicates_by_provider.items()
    }
    assert sum(m["pipeline_duplicates_total"].values()) == truth.duplicates
    assert sum(m["pipeline_stale_total"].values()) == truth.stale
    assert by_label(m["pipeline_receipts_in_total"], "provider") == {
        p: float(n) for p, n in truth.by_provider.items()
    }
    assert sum(m["pipeline_records_in_total"].values()) == truth.records - sum(
        1 for d in want.dead_letters if d.error_class in ("UnknownFormat", "BodyTooLarge")
    )
    lag = m.get("pipeline_consumer_lag", {})
    assert lag and all(v == 0 for v in lag.values()), lag
    assert m["pipeline_window_messages"][()] > 0

    assert await proc.stop() == 0
    assert proc.messages("stopped")[0]["batches"] == m["pipeline_batches_total"][()]
    assert proc.crashes() == []


async def test_workers_one_endpoint(kafka_bootstrap: str, spawn: Spawn) -> None:
    """`--workers 2`: one port, every worker's series under a `worker` label, and the probes
    answer for both workers."""
    topics = await make_topics(kafka_bootstrap, "metrics-workers", raw=4, out=4, dlq=1)
    truth = corpus.Truth()
    records = plan(corpus_records(73, 4_000, truth), topics.raw, 4)
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--workers", "2"]))
    port = await proc.metrics_port()
    assert len(proc.messages("metrics served")) == 1  # the parent's, not one per worker
    await proc.wait_log(lambda d: len(proc.messages("partitions assigned")) >= 2, timeout=40)
    await produce(kafka_bootstrap, records)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])

    deadline = time.monotonic() + 20
    while (await asyncio.to_thread(scrape, port, "/readyz"))[0] != 200:
        assert time.monotonic() < deadline, await asyncio.to_thread(scrape, port, "/readyz")
        await asyncio.sleep(0.2)
    assert (await asyncio.to_thread(scrape, port, "/livez"))[0] == 200
    status, body = await asyncio.to_thread(scrape, port, "/metrics")
    assert status == 200
    m = parse_metrics(body)
    assert {dict(k)["worker"] for k in m["pipeline_worker_up"]} == {"0", "1"}
    assert set(m["pipeline_worker_up"].values()) == {1.0}
    per_worker = Counter[str]()
    for labels, v in m["pipeline_receipts_in_total"].items():
        per_worker[dict(labels)["worker"]] += int(v)
    assert sum(per_worker.values()) == sum(truth.by_provider.values())
    batches = {dict(k)["worker"]: v for k, v in m["pipeline_batches_total"].items()}
    assert set(batches) == {"0", "1"}
    out = await drain(kafka_bootstrap, topics.out)
    assert sum(m["pipeline_events_out_total"].values()) == len(out) == truth.emitted
    assert await proc.stop() == 0
    assert proc.crashes() == []
