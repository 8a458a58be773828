"""A mixed stream of every provider and format, with retries and overlaps, through the real
processor and broker: exactly the events and dead letters the embedded core makes of it."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from benchmarks import corpus

from .conftest import (
    Spawn,
    check_dead_letters,
    check_outputs,
    corpus_stream,
    drain,
    expected,
    interleaved,
    produce,
    run_args,
    wait_processed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def test_every_event_once_and_every_dead_letter(kafka_bootstrap: str, spawn: Spawn) -> None:
    truth = corpus.Truth()
    topics, records, want = await corpus_stream(kafka_bootstrap, "e2e", 11, 12_000, truth=truth)

    # The stream really is what the test claims: every format, provider retries of whole
    # bodies, duplicate reports (poll pages overlapping, push and poll of the same report),
    # stale reports, malformed and non-receipt bodies, headered and unlabelled records.
    assert set(truth.formats) == set(corpus.FORMATS), set(corpus.FORMATS) - set(truth.formats)
    assert truth.retried_bodies > 0 and truth.duplicates > 500 and truth.stale > 0
    assert truth.as_dict()["malformed"] > 0 and truth.as_dict()["non_receipts"] > 0
    assert 0 < truth.headered < truth.records
    assert {r.partition for r in records} == {0, 1, 2, 3}

    # The expectation does not depend on how partitions interleave: `plan` put every report of
    # a message in its provider's partition, so any merge that keeps each partition's order
    # (which is all the processor guarantees) gives the same events. Check that on two merges.
    for seed in (1, 2):
        other = expected(interleaved(records, seed))
        assert Counter((o.key, o.value) for o in other.outputs) == Counter(
            (o.key, o.value) for o in want.outputs
        )
    assert len(want.outputs) == truth.emitted
    assert want.dead_letters

    await produce(kafka_bootstrap, records)
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--batch-max-records", "300"]))
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    written: set[int] = set()
    out = await drain(kafka_bootstrap, topics.out, codecs=written)
    dlq = await drain(kafka_bootstrap, topics.dlq)
    # Both hops' batches (built by the sink) compressed as --compression says: zstd.
    internal: set[int] = set()
    await drain(kafka_bootstrap, f"{topics.out}.by-message", codecs=internal)
    assert (internal, written) == ({4}, {4})

    check_outputs(out, want.outputs, 6)
    assert {
        (e["provider"], e["message_key"], e["status"])
        for e in map(json.loads, (m.value for m in out))
    } == {
        (e["provider"], e["message_key"], e["status"])
        for e in (json.loads(o.value) for o in want.outputs)
    }
    check_dead_letters(dlq, want.dead_letters)
    for m in dlq:
        h = dict(m.headers)
        assert h["source.topic"] == topics.raw.encode()
        source = next(
            r
            for r in records
            if r.partition == int(h["source.partition"]) and r.offset == int(h["source.offset"])
        )
        assert m.value == source.value and list(m.headers)[:-5] == source.headers
        assert h["error.class"] in {
            b"MalformedBody",
            b"UnsafeXml",
            b"ProviderError",
            b"UnknownFormat",
            b"BodyTooLarge",
        }
        assert h["error.message"]

    assert await proc.stop() == 0
    assert proc.crashes() == []
    assert proc.messages("stopped")[0]["batches"] >= len(records) // 300
