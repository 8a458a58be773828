"""The corpus on the raw topic and the output a correct processor must produce."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.e2e.config import PARTITIONS, PROVIDER_PARTITION, SEED

# -- corpus, expected output ----------------------------------------------------------------------


def _provider_of(record: Any) -> str | None:
    from pipeline.core import sniff

    headers: list[tuple[str, bytes]] = record.headers
    for key, value in headers:
        if key == "provider":
            return value.decode("utf-8", "replace")
    route = sniff(record.value)
    return route.provider if route is not None else None


def place(records: Sequence[Any], topic: str) -> list[Any]:
    """The records as they will sit on `topic`: partitioned by provider, offsets in order."""
    from pipeline.core import InputRecord

    offsets = [0] * PARTITIONS
    placed = []
    for i, r in enumerate(records):
        p = PROVIDER_PARTITION.get(_provider_of(r) or "", i % PARTITIONS)
        placed.append(InputRecord(topic, p, offsets[p], r.timestamp_ms, list(r.headers), r.value))
        offsets[p] += 1
    return placed


def canonical_digest(value: bytes) -> bytes:
    import orjson

    canon = orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canon, digest_size=16).digest()


#: A record as the relays write it again: key, value, headers.
PoolRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]


@dataclass
class Expected:
    events: int  # phase 1
    dead: int
    digests: Counter[bytes]
    receipts: int
    duplicates: int
    stale: int
    pool: list[PoolRecord]
    #: State records (the state topic's), sampled like `pool`: a relay writing them beside
    #: the outputs prices the state topic's writes with nothing computed.
    state_pool: list[PoolRecord]
    mean_value: float
    mean_record: float


@dataclass
class LatencyCorpus:
    """The continuation of the stream, sent in phase 2 (placed on a topic named "latency")."""

    records: list[Any]
    receipts: list[int]  # reports in record i
    events: list[int]  # expected events after records 0..i (phase 1 in the window)
    dead: list[int]  # expected dead letters after records 0..i


def _run_core(
    records: Sequence[Any], batch: int = 1000, states: list[Any] | None = None
) -> tuple[list[Any], int, Any]:
    """The core's outputs and dead-letter count; ``states``: collect its state records too."""
    from pipeline.core import Core, Lifecycle, Timeouts
    from pipeline.state import Window

    window = Window(5_000_000, 86_400_000, lifecycle=states is not None)
    life = None if states is None else Lifecycle(window, Timeouts(43_200_000, capacity=5_000_000))
    core = Core(window, lifecycle=life)
    outputs: list[Any] = []
    dead = 0
    for i in range(0, len(records), batch):
        result = core.process(records[i : i + batch])
        outputs += result.outputs
        dead += len(result.dead_letters)
        if states is not None:
            states += result.states
    return outputs, dead, core


def prepare(
    receipts: int, latency_receipts: int, topic: str, start_ms: int, cross_check: bool = True
) -> tuple[list[Any], Expected, LatencyCorpus, list[str]]:
    """One seed-1 stream of `receipts + latency_receipts` reports, starting at `start_ms`: its
    first `receipts` reports are phase 1 (loaded on `topic`), the rest is phase 2.

    Phase 2 continues the same stream (provider retries and late statuses of phase-1 messages
    included, identities never reused), so the expected phase-2 output is that of a window that
    still holds phase 1, as every contender's does. The corpus starts ~2 h 10 min before now so
    that the real timestamps phase 2 is sent with stay within the window's 24 h of phase 1.
    """
    from benchmarks.corpus import Truth, generate

    truth = Truth()
    records: list[Any] = []
    per: list[int] = []
    before = 0
    for r in generate(SEED, receipts + latency_receipts, start=start_ms, truth=truth):
        records.append(r)
        per.append(truth.receipts - before)
        before = truth.receipts
    split, total = 0, 0
    while split < len(records) and total < receipts:
        total += per[split]
        split += 1
    placed = place(records[:split], topic)
    later = place(records[split:], "latency")
    notes: list[str] = []
    # Generation order = each partition in partition order (partitioned by provider).
    states: list[Any] = []
    outputs, dead, core = _run_core(placed, states=states)
    counters = core.window.counters.as_dict()
    ids = Counter(v for o in outputs for k, v in o.headers if k == "event_id")
    if any(n > 1 for n in ids.values()):
        notes.append("WARNING: the core itself emitted an event_id twice")
    values = sorted(o.value for o in outputs)
    orders = (
        ("each partition in turn", sorted(placed, key=lambda r: (r.partition, r.offset))),
        ("partitions in reverse", sorted(placed, key=lambda r: (-r.partition, r.offset))),
    )
    for name, order in orders if cross_check else ():
        other, other_dead, _ = _run_core(order)
        same = other_dead == dead and sorted(o.value for o in other) == values
        notes.append(f"core output consuming {name}: {'identical' if same else 'DIFFERENT'}")
    del values
    events, deads = [], []
    n_events, n_dead = 0, 0
    for r in later:
        result = core.process([r])
        n_events += len(result.outputs)
        n_dead += len(result.dead_letters)
        events.append(n_events)
        deads.append(n_dead)
    step = max(1, len(outputs) // 4096)
    record_bytes = [
        len(o.key) + len(o.value) + sum(len(k) + len(v) for k, v in o.headers) for o in outputs
    ]
    expected = Expected(
        events=len(outputs),
        dead=dead,
        digests=Counter(canonical_digest(o.value) for o in outputs),
        receipts=total,
        duplicates=sum(counters["duplicates"].values()),
        stale=sum(counters["stale"].values()),
        pool=[(o.key, o.value, o.headers) for o in outputs[::step]],
        state_pool=[(s.key, s.value, list(s.headers)) for s in states[::step]],
        mean_value=sum(len(o.value) for o in outputs) / max(1, len(outputs)),
        mean_record=sum(record_bytes) / max(1, len(record_bytes)),
    )
    return placed, expected, LatencyCorpus(later, per[split:], events, deads), notes
