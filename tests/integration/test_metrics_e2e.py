"""The metrics endpoint of a running processor: it answers while the stream flows, and its
counters agree with the topics and with what the corpus generator injected."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from .conftest import (
    corpus,
    corpus_records,
    drain,
    expected,
    make_topics,
    parse_metrics,
    plan,
    produce,
    run_args,
    scrape,
    wait_committed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


def by_label(samples: dict, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in samples.items()}


async def test_metrics_match_the_topics(kafka_bootstrap: str, spawn) -> None:
    topics = await make_topics(kafka_bootstrap, "metrics", raw=4, out=6, dlq=2)
    truth = corpus.Truth()
    records = plan(corpus_records(71, 30_000, truth), topics.raw, 4)
    want = expected(records)
    assert len(want.outputs) == truth.emitted and truth.duplicates > 0

    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--batch-max-records", "100"]))
    port = await proc.metrics_port()
    # Both stages in the group (the dedupe stage joins first, then the route stage).
    await proc.wait_log(
        lambda d: d.get("msg") == "partitions assigned" and d.get("stage") == "route", timeout=30
    )
    feed = asyncio.create_task(produce(kafka_bootstrap, records, spread_s=4.0))

    # While the stream flows: both endpoints answer, and the batch counter moves.
    seen_batches = []
    try:
        deadline = time.monotonic() + 30
        while not feed.done():
            status, body = await asyncio.to_thread(scrape, port, "/healthz")
            assert (status, body) == (200, "ok\n")
            status, body = await asyncio.to_thread(scrape, port, "/metrics")
            assert status == 200
            seen_batches.append(parse_metrics(body).get("pipeline_batches_total", {}).get((), 0))
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        await feed
    finally:
        feed.cancel()
    # (a counter nobody incremented yet is not rendered: 0 before the first batch)
    moving = [n for n in seen_batches if n > 0]
    assert len(moving) >= 3 and moving[-1] > moving[0], seen_batches
    assert (await asyncio.to_thread(scrape, port, "/nope"))[0] == 404

    await wait_committed(kafka_bootstrap, topics.group, topics.raw, output=topics.out, procs=[proc])
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
