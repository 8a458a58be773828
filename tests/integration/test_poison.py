"""Thousands of hostile and malformed bodies mixed into good traffic: every one dead-lettered
with its reason, every good event out, and the processor never goes down."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from pipeline.core._batch import record_size
from pipeline.normalise._errors import DEFAULT_RECORD_MAX_BYTES

from .conftest import (
    BIG,
    check_dead_letters,
    check_outputs,
    corpus_records,
    drain,
    expected,
    make_topics,
    plan,
    produce,
    run_args,
    wait_committed,
)
from .hostile import hostile

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def test_poison_is_dead_lettered_and_never_stops_the_processor(
    kafka_bootstrap: str, spawn
) -> None:
    # Every topic takes 9 MiB records: the raw one (the ingress landed them) and the dead-letter
    # one (a dead letter carries the original bytes).
    topics = await make_topics(kafka_bootstrap, "poison", raw=4, out=6, dlq=2, big=True)
    good = corpus_records(51, 10_000)
    bad = hostile(good, 2_000, seed=5, stamp=good[len(good) // 2].timestamp_ms, huge=3)
    kinds = Counter(kind for kind, _, _ in bad)
    assert len(kinds) == 10 and kinds["oversized"] == 3, kinds

    # Hostile bodies at random places of the good stream (which keeps its own order).
    rng = random.Random(9)
    slots = sorted(rng.randrange(len(good) + 1) for _ in bad)
    mixed, g = [], 0
    order = list(range(len(bad)))
    rng.shuffle(order)
    for slot, i in zip(slots, order, strict=True):
        mixed += good[g:slot]
        g = slot
        mixed.append(bad[i][2])
    mixed += good[g:]
    records = plan(mixed, topics.raw, 4)
    position = {id(m): (r.partition, r.offset) for m, r in zip(mixed, records, strict=True)}
    designed = {position[id(r)]: error for _, error, r in bad}
    assert len(designed) == len(bad)

    # The reference core dead-letters every hostile record with the class it was made for,
    # and the good traffic gives the same events as without the hostile records.
    want = expected(records)
    classes = {}
    for d in want.dead_letters:
        h = dict(d.headers[-5:])
        classes[int(h["source.partition"]), int(h["source.offset"])] = d.error_class
    mismatched = {p: (e, classes.get(p)) for p, e in designed.items() if classes.get(p) != e}
    assert not mismatched, list(mismatched.items())[:5]
    only_good = expected(plan(good, topics.raw, 4))

    def identities(outputs: list) -> set:
        return {(o.key, dict(o.headers)["status"]) for o in outputs}

    assert identities(want.outputs) == identities(only_good.outputs)

    await produce(kafka_bootstrap, records, max_request_size=BIG)
    proc = spawn(run_args(kafka_bootstrap, topics, extra=["--batch-max-records", "500"]))
    pid = proc.pid
    await wait_committed(
        kafka_bootstrap, topics.group, topics.raw, output=topics.out, procs=[proc], timeout=120
    )
    out = await drain(kafka_bootstrap, topics.out)
    dlq = await drain(kafka_bootstrap, topics.dlq)

    check_outputs(out, want.outputs, 6)
    check_dead_letters(dlq, want.dead_letters)
    by_class = Counter(dict(m.headers)["error.class"].decode() for m in dlq)
    assert by_class == Counter(d.error_class for d in want.dead_letters)
    for error, n in Counter(designed.values()).items():
        assert by_class[error] >= n, (error, by_class)
    assert by_class["BodyTooLarge"] == 3 and by_class["UnsafeXml"] == kinds["xml_attack"]
    for m in dlq:
        h = dict(m.headers)
        if h["error.class"] == b"BodyTooLarge":
            # Cut to fit the dead-letter record limit, the original size in a header.
            assert 1_000_000 < len(m.value) < DEFAULT_RECORD_MAX_BYTES
            assert record_size(m.key, m.value, m.headers) <= DEFAULT_RECORD_MAX_BYTES
            assert int(h["error.original_size"]) > 8 * 1024 * 1024
        assert json.dumps(h["error.message"].decode("utf-8"))  # a readable reason

    # The same process all along: never crashed, never restarted, still consuming.
    assert proc.alive() and proc.pid == pid
    assert len(proc.messages("started")) == 1
    assert proc.crashes() == []
    assert await proc.stop() == 0
