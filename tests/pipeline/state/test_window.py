"""The dedupe window (pipeline/state/_window.py): rules against a reference model, bounds,
rebuild."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import DUPLICATE, EMIT, STALE
from pipeline.state import Window, message_hash, message_hashes
from schemas._event import PROVIDER_INDEX, PROVIDERS, RANK, STATUS_INDEX, STATUSES

S = STATUS_INDEX
RANKS = [RANK[s] for s in STATUSES]
NP = len(PROVIDERS)

Event = tuple[int, int, int]  # (hash, status code, provider code)


class Model:
    """The rules with no bounds: a dict of sets."""

    def __init__(self) -> None:
        self.emitted: dict[int, set[int]] = {}

    def check(self, h: int, s: int) -> int:
        seen = self.emitted.setdefault(h, set())
        if s in seen:
            return DUPLICATE
        if seen and RANKS[s] < max(RANKS[t] for t in seen):
            return STALE
        seen.add(s)
        return EMIT


def check(w: Window, events: Sequence[Event], now: int) -> list[int]:
    return list(
        w.check_batch([e[0] for e in events], [e[1] for e in events], [e[2] for e in events], now)
    )


def load(w: Window, events: Sequence[Event], now: int) -> None:
    w.load_batch([e[0] for e in events], [e[1] for e in events], [e[2] for e in events], now)


def msg(i: int, provider: int | None = None) -> tuple[int, int]:
    """(hash, provider) of the i-th test message."""
    p = i % NP if provider is None else provider
    return message_hash(f"{PROVIDERS[p]}:m{i}".encode()), p


# -- the rules ---------------------------------------------------------------------------------


def test_rules_examples() -> None:
    w = Window(max_messages=100, ttl_ms=10_000)
    h, p = msg(1)
    seq = [
        "SENT",
        "SENT",
        "PENDING",
        "UNKNOWN",
        "SENT",
        "DELIVERED",
        "UNKNOWN",
        "FAILED",
        "DELIVERED",
        "EXPIRED",
        "PENDING",
    ]
    got = check(w, [(h, S[s], p) for s in seq], 0)
    assert got == [
        EMIT,
        DUPLICATE,
        STALE,
        EMIT,
        DUPLICATE,
        EMIT,
        DUPLICATE,
        EMIT,
        DUPLICATE,
        EMIT,
        STALE,
    ]
    # Another message with the same statuses is independent; so is the same key elsewhere.
    h2, p2 = msg(2)
    assert check(w, [(h2, S["DELIVERED"], p2), (h2, S["SENT"], p2)], 1) == [EMIT, STALE]
    c = w.counters.as_dict()
    assert sum(c["emitted"].values()) == 6
    assert sum(c["duplicates"].values()) == 4
    assert sum(c["stale"].values()) == 3
    assert c["emitted"][PROVIDERS[p]] >= 5


def test_counters_per_provider() -> None:
    w = Window(max_messages=100, ttl_ms=10_000)
    ya, yp = msg(1, PROVIDER_INDEX["yunpian"])
    ta, tp = msg(2, PROVIDER_INDEX["tencent"])
    check(
        w,
        [
            (ya, S["DELIVERED"], yp),
            (ya, S["DELIVERED"], yp),
            (ta, S["DELIVERED"], tp),
            (ta, S["SENT"], tp),
        ],
        0,
    )
    d = w.counters.as_dict()
    assert set(d) == {"emitted", "duplicates", "stale", "evicted_by_count", "expired"}
    assert d["emitted"] == {p: int(p in ("yunpian", "tencent")) for p in PROVIDERS}
    assert d["duplicates"]["yunpian"] == 1 and d["stale"]["tencent"] == 1
    assert sum(d["duplicates"].values()) + sum(d["stale"].values()) == 2


events_st = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, len(STATUSES) - 1)), min_size=0, max_size=120
)


@settings(max_examples=300, deadline=None)
@given(
    events=events_st,
    cuts=st.lists(st.integers(0, 120), max_size=12),
    jumps=st.lists(st.integers(-3_000, 3_000), min_size=13, max_size=13),
    generations=st.integers(1, 16),
)
def test_model(
    events: list[tuple[int, int]], cuts: list[int], jumps: list[int], generations: int
) -> None:
    """Any events, batch splits, time jumps (also backwards): verdicts equal the unbounded model.

    max_messages (256) exceeds the inserts possible (<= 120) and time stays below ttl, so no
    bound is reached; generations still rotate by count (every ceil(256/G) inserts) and by time
    (every ttl/G), so messages move between generations.
    """
    ttl = 10_000
    w = Window(max_messages=256, ttl_ms=ttl, generations=generations)
    model = Model()
    hashes = [msg(i)[0] for i in range(6)]
    evs = [(hashes[m], s, m % NP) for m, s in events]
    bounds = sorted({0, len(evs), *(c for c in cuts if c <= len(evs))})
    now = 0
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        now = min(max(0, now + jumps[k]), ttl - 1)
        got = check(w, evs[lo:hi], now)
        assert got == [model.check(h, s) for h, s, _ in evs[lo:hi]]
    assert len(w) == len(model.emitted)
    assert sum(w.counters.evicted_by_count) == sum(w.counters.expired) == 0


def test_model_random_long() -> None:
    """A longer random stream (more messages, big batches, rotations) against the model."""
    rnd = random.Random(7)
    w = Window(max_messages=20_000, ttl_ms=1_000_000, generations=8)
    model = Model()
    hashes = [msg(i)[0] for i in range(500)]
    now = 0
    for _ in range(60):
        batch = [
            (hashes[m], rnd.randrange(len(STATUSES)), m % NP)
            for m in (rnd.randrange(500) for _ in range(rnd.randrange(300)))
        ]
        now += rnd.randrange(30_000)
        assert check(w, batch, now) == [model.check(h, s) for h, s, _ in batch]
    assert len(w) == len(model.emitted)
    assert w.generations_held > 1


# -- bounds ------------------------------------------------------------------------------------


def test_count_eviction_exactly_at_the_bound() -> None:
    w = Window(max_messages=100, ttl_ms=10**9, generations=4)  # 25 inserts per generation
    msgs = [msg(i) for i in range(101)]
    got = check(w, [(h, S["SENT"], p) for h, p in msgs[:60]], 0)
    got += check(w, [(h, S["SENT"], p) for h, p in msgs[60:100]], 1)
    assert got == [EMIT] * 100
    assert len(w) == 100
    assert sum(w.counters.evicted_by_count) == 0
    # Duplicates and stale reports take no room: still no eviction.
    assert check(w, [(h, S["SENT"], p) for h, p in msgs[:100]], 2) == [DUPLICATE] * 100
    assert len(w) == 100 and sum(w.counters.evicted_by_count) == 0
    # Nor does a new status of a message in the current generation (updated in place).
    h99, p99 = msgs[99]
    assert check(w, [(h99, S["DELIVERED"], p99)], 2) == [EMIT]
    assert len(w) == 100 and sum(w.counters.evicted_by_count) == 0
    # Message 101 crosses the bound: the oldest generation (messages 0..24) is evicted.
    assert check(w, [(msgs[100][0], S["SENT"], msgs[100][1])], 3) == [EMIT]
    want = [0] * NP
    for _, p in msgs[:25]:
        want[p] += 1
    assert w.counters.evicted_by_count == want
    assert sum(w.counters.expired) == 0
    assert len(w) == 76
    # 25..100 are still remembered; 0..24 are forgotten (emitted again).
    assert check(w, [(h, S["SENT"], p) for h, p in msgs[25:101]], 4) == [DUPLICATE] * 76
    assert check(w, [(msgs[0][0], S["SENT"], msgs[0][1])], 5) == [EMIT]


def test_count_eviction_inside_one_batch() -> None:
    w = Window(max_messages=10, ttl_ms=10**9, generations=2)  # 5 inserts per generation
    msgs = [msg(i) for i in range(11)]
    got = check(w, [(h, S["DELIVERED"], p) for h, p in msgs], 0)
    assert got == [EMIT] * 11
    assert sum(w.counters.evicted_by_count) == 5
    assert len(w) == 6
    assert len(w) <= w.max_messages


def test_moves_take_a_slot() -> None:
    """A message updated from an older generation moves; its old slot counts until retired."""
    w = Window(max_messages=4, ttl_ms=10**9, generations=2)  # 2 inserts per generation
    (a, pa), (b, pb), (c, pc) = msg(0), msg(1), msg(2)
    assert check(w, [(a, S["SENT"], pa), (b, S["SENT"], pb)], 0) == [EMIT, EMIT]
    assert check(w, [(c, S["SENT"], pc), (a, S["DELIVERED"], pa)], 1) == [EMIT, EMIT]  # a moves
    assert len(w) == 3
    # Slots: gen0 {a (moved out), b}, gen1 {c, a}: full. The next insert evicts gen0, i.e. b.
    d, pd = msg(3)
    assert check(w, [(d, S["SENT"], pd)], 2) == [EMIT]
    assert sum(w.counters.evicted_by_count) == 1
    assert check(w, [(a, S["DELIVERED"], pa), (c, S["SENT"], pc), (b, S["SENT"], pb)], 3) == [
        DUPLICATE,
        DUPLICATE,
        EMIT,
    ]


def test_ttl_expiry_exactly_at_ttl() -> None:
    ttl = 1_000
    w = Window(max_messages=1_000, ttl_ms=ttl, generations=4)
    (a, pa), (b, pb) = msg(0, 2), msg(1, 3)
    assert check(w, [(a, S["SENT"], pa)], 5_000) == [EMIT]
    assert check(w, [(b, S["SENT"], pb)], 5_600) == [EMIT]
    # At ttl - 1 after its emission a is still remembered (age < ttl).
    assert check(w, [(a, S["SENT"], pa)], 5_000 + ttl - 1) == [DUPLICATE]
    assert sum(w.counters.expired) == 0
    # At exactly ttl it is forgotten, counted as expired (not evicted); b is 400 ms younger.
    assert check(w, [(b, S["SENT"], pb)], 5_000 + ttl) == [DUPLICATE]
    assert w.counters.expired == [0, 0, 1, 0, 0]
    assert sum(w.counters.evicted_by_count) == 0
    assert check(w, [(a, S["SENT"], pa)], 5_000 + ttl) == [EMIT]
    assert check(w, [(b, S["SENT"], pb)], 5_600 + ttl - 1) == [DUPLICATE]
    assert check(w, [(b, S["DELIVERED"], pb)], 5_600 + ttl) == [EMIT]
    assert w.counters.expired == [0, 0, 1, 1, 0]


def test_update_renews_ttl() -> None:
    """A message is remembered for ttl after its last emission (it moves to the newest gen)."""
    ttl = 1_000
    w = Window(max_messages=1_000, ttl_ms=ttl, generations=4)
    a, pa = msg(0)
    check(w, [(a, S["SENT"], pa)], 0)
    check(w, [(a, S["DELIVERED"], pa)], 900)
    assert check(w, [(a, S["SENT"], pa), (a, S["DELIVERED"], pa)], 1_899) == [DUPLICATE] * 2
    assert check(w, [(a, S["DELIVERED"], pa)], 1_900) == [EMIT]


def test_time_never_goes_backwards() -> None:
    ttl = 1_000
    w = Window(max_messages=1_000, ttl_ms=ttl, generations=4)
    (a, pa), (b, pb) = msg(0), msg(1)
    check(w, [(a, S["SENT"], pa)], 5_000)
    # A late batch (timestamps from the past) is stamped with the window's time, 5 000.
    assert check(w, [(b, S["SENT"], pb)], 100) == [EMIT]
    assert check(w, [(a, S["SENT"], pa), (b, S["SENT"], pb)], 200) == [DUPLICATE, DUPLICATE]
    assert check(w, [(b, S["SENT"], pb)], 5_999) == [DUPLICATE]
    assert check(w, [(a, S["SENT"], pa), (b, S["SENT"], pb)], 6_000) == [EMIT, EMIT]
    # And going back again does not revive anything or expire early.
    assert check(w, [(a, S["SENT"], pa), (b, S["SENT"], pb)], 0) == [DUPLICATE, DUPLICATE]


def test_memory_bounded_under_new_keys() -> None:
    cap = 10_000
    w = Window(max_messages=cap, ttl_ms=10**9, generations=8)
    rnd = random.Random(3)
    fed = 0
    backlog_max = 0
    while fed < 10 * cap:
        batch = [(rnd.getrandbits(60), S["SENT"], rnd.randrange(NP)) for _ in range(1_000)]
        assert check(w, batch, fed) == [EMIT] * len(batch)  # all new
        fed += len(batch)
        assert len(w) <= cap
        backlog_max = max(backlog_max, w.unreleased)
        assert w.generations_held <= 8
    # Retired generations are released as fast as they retire: at most about one is pending.
    assert backlog_max <= cap // 8 + 1_000
    assert len(w) + sum(w.counters.evicted_by_count) == fed
    assert sum(w.counters.expired) == 0


def test_mass_expiry_is_released_incrementally() -> None:
    cap = 10_000
    w = Window(max_messages=cap, ttl_ms=1_000, generations=8)
    rnd = random.Random(4)
    for t in range(10):
        batch = [(rnd.getrandbits(60), S["SENT"], 0) for _ in range(1_000)]
        check(w, batch, t)
    assert len(w) == cap and w.unreleased == 0
    check(w, [], 10**6)  # everything expires at once ...
    assert len(w) == 0
    assert w.counters.expired[0] == cap
    # ... but is released a bounded number of entries per call, not all in this call.
    assert 0 < w.unreleased < cap
    calls = 0
    while w.unreleased:
        check(w, [], 10**6)
        calls += 1
    assert calls >= 5


def test_recent_messages_survive_many_rotations() -> None:
    """Over thousands of rotations (8-bit generation tags wrap many times), the newest
    max - max/G messages are always remembered, and len never exceeds the bound."""
    w = Window(max_messages=64, ttl_ms=10**9, generations=8)  # 8 inserts per generation
    msgs = [msg(i) for i in range(3_000)]
    for k, (h, p) in enumerate(msgs):
        assert check(w, [(h, S["SENT"], p)], k) == [EMIT]
        if k % 3 == 0:  # some updates too, which move messages to the newest generation
            assert check(w, [(h, S["DELIVERED"], p)], k) == [EMIT]
        recent = msgs[max(0, k - 55) : k + 1]
        assert check(w, [(rh, S["SENT"], rp) for rh, rp in recent], k) == [DUPLICATE] * len(recent)
        assert len(w) <= 64
    assert w.generations_held <= 8


def test_small_capacities() -> None:
    for cap, gens in [(1, 1), (1, 8), (2, 3), (7, 16), (3, 1)]:
        w = Window(max_messages=cap, ttl_ms=10**9, generations=gens)
        msgs = [msg(i) for i in range(4 * cap + 3)]
        for k, (h, p) in enumerate(msgs):
            assert check(w, [(h, S["SENT"], p), (h, S["SENT"], p)], k) == [EMIT, DUPLICATE]
            assert 1 <= len(w) <= cap
        assert len(w) + sum(w.counters.evicted_by_count) == len(msgs)


# -- rebuild -----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    cap=st.sampled_from([8, 30, 1_000]),
    generations=st.integers(1, 8),
    ttl=st.sampled_from([50, 10_000]),
)
def test_rebuild_makes_the_same_decisions(seed: int, cap: int, generations: int, ttl: int) -> None:
    """Loading what a window emitted (same batches, same times) gives the same window, also
    when bounds were reached (count evictions, expiry) along the way."""
    rnd = random.Random(seed)
    hashes = [msg(i)[0] for i in range(40)]

    def stream(n_batches: int, t0: int) -> list[tuple[list[Event], int]]:
        out = []
        t = t0
        for _ in range(n_batches):
            t += rnd.randrange(-5, 20)
            out.append(
                (
                    [
                        (hashes[m], rnd.randrange(len(STATUSES)), m % NP)
                        for m in (rnd.randrange(40) for _ in range(rnd.randrange(15)))
                    ],
                    t,
                )
            )
        return out

    original = Window(max_messages=cap, ttl_ms=ttl, generations=generations)
    rebuilt = Window(max_messages=cap, ttl_ms=ttl, generations=generations)
    for batch, t in stream(30, 0):
        verdicts = check(original, batch, t)
        load(rebuilt, [e for e, v in zip(batch, verdicts, strict=True) if v == EMIT], t)
    assert sum(rebuilt.counters.emitted) == 0  # load_batch counts nothing
    assert len(rebuilt) == len(original)
    for batch, t in stream(30, 400):
        assert check(rebuilt, batch, t) == check(original, batch, t)
    assert len(rebuilt) == len(original)


def test_rebuild_from_the_log_in_other_batches() -> None:
    """Rebuilt from the emitted events in different batches (as read back from the output
    topic): without bounds reached, the decisions are the same."""
    rnd = random.Random(11)
    hashes = [msg(i)[0] for i in range(300)]
    original = Window(max_messages=10_000, ttl_ms=10**9)
    log: list[Event] = []
    for t in range(50):
        batch = [
            (hashes[m], rnd.randrange(len(STATUSES)), m % NP)
            for m in (rnd.randrange(300) for _ in range(100))
        ]
        log += [e for e, v in zip(batch, check(original, batch, t), strict=True) if v == EMIT]
    rebuilt = Window(max_messages=10_000, ttl_ms=10**9)
    for i in range(0, len(log), 777):
        load(rebuilt, log[i : i + 777], 49)
    follow = [
        (hashes[m], rnd.randrange(len(STATUSES)), m % NP)
        for m in (rnd.randrange(300) for _ in range(2_000))
    ]
    assert check(rebuilt, follow, 60) == check(original, follow, 60)


def test_load_marks_even_stale_statuses() -> None:
    w = Window(max_messages=10, ttl_ms=10_000)
    h, p = msg(0)
    load(w, [(h, S["DELIVERED"], p), (h, S["SENT"], p), (h, S["SENT"], p)], 0)
    assert check(w, [(h, S["SENT"], p), (h, S["PENDING"], p), (h, S["FAILED"], p)], 1) == [
        DUPLICATE,
        STALE,
        EMIT,
    ]
    assert sum(w.counters.emitted) == 1 and sum(w.counters.duplicates) == 1


# -- hashing and arguments ---------------------------------------------------------------------


def test_message_hash() -> None:
    h = message_hash(b"yunpian:abc")
    assert h == message_hash(b"yunpian:abc")
    assert h == hash(b"yunpian:abc") & (2**60 - 1)
    assert 0 <= h < 2**60
    assert message_hash(b"tencent:abc") != h
    keys = [b"a:%d" % i for i in range(1000)]
    assert message_hashes(keys) == [message_hash(k) for k in keys]
    assert len(set(message_hashes(keys))) == 1000


def test_message_hash_ints_are_32_byte_objects() -> None:
    """The window keeps the caller's hash ints as dict keys: each must be a 32-byte block."""
    keys = [b"yunpian:%d" % i for i in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hashes = message_hashes(keys)
        per_key = (tracemalloc.get_traced_memory()[0] - before) / len(hashes)
    finally:
        tracemalloc.stop()
    assert per_key <= 32 + 8 + 1  # the int, plus the list's pointer to it


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_messages": 0}, "max_messages"),
        ({"max_messages": -5}, "max_messages"),
        ({"max_messages": 1.5}, "max_messages"),
        ({"max_messages": True}, "max_messages"),
        ({"ttl_ms": 0}, "ttl_ms"),
        ({"ttl_ms": "1000"}, "ttl_ms"),
        ({"generations": 0}, "generations"),
        ({"generations": 65}, "generations"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Window(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hashes", "statuses", "providers", "name"),
    [
        ([1, 2], [0], [0, 0], "statuses"),
        ([1, 2], [0, 0], [0], "providers"),
        ([1], [9], [0], "statuses"),
        ([1], [-1], [0], "statuses"),
        ([1], [300], [0], "statuses"),
        ([1], [0], [5], "providers"),
        ([1], [0], [-1], "providers"),
    ],
)
def test_batch_validation(
    hashes: list[int], statuses: list[int], providers: list[int], name: str
) -> None:
    w = Window(max_messages=10)
    with pytest.raises(ValueError, match=name):
        w.check_batch(hashes, statuses, providers, 0)
    with pytest.raises(ValueError, match=name):
        w.load_batch(hashes, statuses, providers, 0)
    assert len(w) == 0


def test_bad_hash_mid_batch_keeps_the_books() -> None:
    w = Window(max_messages=6, ttl_ms=10**9, generations=2)
    msgs = [msg(i) for i in range(20)]
    (a, pa), (b, pb) = msgs[0], msgs[1]
    with pytest.raises(TypeError):
        w.check_batch([a, b, "not a hash"], [0, 0, 0], [pa, pb, 0], 0)  # type: ignore[list-item]
    assert len(w) == 2  # a and b were applied before the bad one
    assert check(w, [(a, S["PENDING"], pa), (b, S["PENDING"], pb)], 1) == [DUPLICATE] * 2
    for h, p in msgs[2:]:
        check(w, [(h, S["SENT"], p)], 2)
    assert len(w) <= 6
    assert len(w) + sum(w.counters.evicted_by_count) == 20


def test_accepts_bytes_and_tuples() -> None:
    w = Window(max_messages=10)
    h, p = msg(0)
    out = w.check_batch((h, h), bytes([S["SENT"], S["SENT"]]), bytes([p, p]), 0)
    assert isinstance(out, bytearray) and list(out) == [EMIT, DUPLICATE]


# -- keyed hashes, dump and restore --------------------------------------------------------------

KEY = bytes(range(16))


def keyed(cap: int = 1_000, ttl: int = 10_000, generations: int = 4) -> Window:
    return Window(max_messages=cap, ttl_ms=ttl, generations=generations, hash_key=KEY)


def test_hashes_without_a_key_are_message_hashes() -> None:
    keys = [b"uspeedo:a", b"yunpian:b"]
    assert Window(10, 10).hashes(keys) == message_hashes(keys)


def test_keyed_hashes_depend_on_the_key_only() -> None:
    keys = [f"uspeedo:m{i}".encode() for i in range(1000)]
    a, b = keyed().hashes(keys), keyed().hashes(keys)
    other = Window(10, 10, hash_key=bytes(16)).hashes(keys)
    assert a == b
    assert len(set(a)) == len(keys) and all(0 <= h < 1 << 60 for h in a)
    assert sum(x == y for x, y in zip(a, other, strict=True)) == 0
    assert all(sys.getsizeof(h) == 32 for h in a)  # like message_hash's ints


@pytest.mark.parametrize("key", [b"short", bytes(33), "x" * 16])
def test_hash_key_validation(key: object) -> None:
    with pytest.raises(ValueError, match="hash_key"):
        Window(10, 10, hash_key=key)  # type: ignore[arg-type]


def test_a_window_without_a_key_cannot_be_dumped() -> None:
    with pytest.raises(ValueError, match="hash_key"):
        Window(10, 10).dump()


def _stream(
    rnd: random.Random, w: Window, n_batches: int, t0: int
) -> list[tuple[list[Event], int]]:
    out = []
    t = t0
    for _ in range(n_batches):
        t += rnd.randrange(-5, 40)
        batch = []
        for m in (rnd.randrange(300) for _ in range(rnd.randrange(40))):
            h = w.hashes([f"{PROVIDERS[m % NP]}:m{m}".encode()])[0]
            batch.append((h, rnd.randrange(len(STATUSES)), m % NP))
        out.append((batch, t))
    return out


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    cap=st.sampled_from([8, 50, 1_000]),
    generations=st.integers(1, 8),
    ttl=st.sampled_from([100, 10_000]),
)
def test_restore_makes_the_same_decisions(seed: int, cap: int, generations: int, ttl: int) -> None:
    """A restored window is the same state (its dump is byte-equal) and decides the same as
    the original from then on, through moves, rotations, evictions and expiry."""
    rnd = random.Random(seed)
    original = keyed(cap, ttl, generations)
    for batch, t in _stream(rnd, original, 30, 0):
        check(original, batch, t)
    data = original.dump()
    restored = Window.restore(data)
    assert restored.dump() == data
    assert (restored.max_messages, restored.ttl_ms, restored.generations, restored.hash_key) == (
        cap,
        ttl,
        generations,
        KEY,
    )
    assert len(restored) == len(original)
    assert restored.generations_held == original.generations_held
    for batch, t in _stream(rnd, original, 30, 1_000):
        assert check(restored, batch, t) == check(original, batch, t)
    assert restored.dump() == original.dump()


def test_restore_in_another_process() -> None:
    """The point of the keyed hash: another interpreter (another hash() salt) restores the
    window and recognises its messages."""
    w = keyed(cap=100)
    keys = [b"uspeedo:a", b"yunpian:b"]
    assert check(w, [(h, S["SENT"], 0) for h in w.hashes(keys)], 1) == [EMIT, EMIT]
    code = (
        "import sys; from pipeline.state import Window;"
        "w = Window.restore(sys.stdin.buffer.read());"
        "keys = [b'uspeedo:a', b'yunpian:b', b'uspeedo:new'];"
        f"print(list(w.check_batch(w.hashes(keys), [{S['SENT']}] * 3, [0, 0, 0], 2)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=w.dump(),
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )
    assert out.stdout.decode().strip() == str([DUPLICATE, DUPLICATE, EMIT])


def test_restore_of_an_empty_window() -> None:
    w = Window.restore(keyed().dump())
    assert len(w) == 0
    assert check(w, [(1, S["SENT"], 0)], 5) == [EMIT]


def _dump_with_entries() -> bytes:
    w = keyed(cap=100, generations=2)
    check(w, [(h, S["SENT"], 0) for h in w.hashes([b"a", b"b", b"c"])], 1)
    return w.dump()


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


_HEAD_SIZE = 4 + 2 + 8 + 8 + 2 + 8 + 1 + 2 + 8 + 1 + 1 + 8 + 16  # header (format 3) and key
_GEN_SIZE = 1 + 8 + 8 + 8 + 8 + 8 * NP


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"XXXX" + d[4:], "magic"),
        (lambda d: _patched(d, 4, b"\x07\x00"), "format version 7"),
        # (a window this small stores its hint table compressed)
        (lambda d: d[:-1], "does not inflate"),
        (lambda d: d + b"\x00", "does not inflate"),
        (lambda d: d[:20], "not a window dump"),
        (lambda d: b"", "not a window dump"),
        # max_messages 0
        (lambda d: _patched(d, 6, bytes(8)), "max_messages"),
        # the first key (after the one generation header) set to -1
        (lambda d: _patched(d, _HEAD_SIZE + _GEN_SIZE, b"\xff" * 8), "out of range"),
        # the first generation's entry count raised by one
        (lambda d: _patched(d, _HEAD_SIZE + 25, b"\x04"), "books"),
    ],
)
def test_restore_rejects_what_is_not_a_dump(mangle: Callable[[bytes], bytes], message: str) -> None:
    data = _dump_with_entries()
    Window.restore(data)  # the unmangled dump is fine
    with pytest.raises(ValueError, match=message):
        Window.restore(mangle(data))


def test_clear_forgets_every_message_and_keeps_the_counts() -> None:
    w = Window(max_messages=100, ttl_ms=10_000, generations=4)
    events = [(msg(i)[0], S["DELIVERED"], msg(i)[1]) for i in range(300)]
    assert check(w, events, 1_000) == [EMIT] * 300
    emitted = sum(w.counters.emitted)
    w.clear()
    assert len(w) == 0 and w.generations_held == 1
    # Everything is new again (even an old clock is accepted), and counted on top.
    assert check(w, events[-50:], 10) == [EMIT] * 50
    assert check(w, events[-50:], 10) == [DUPLICATE] * 50
    assert sum(w.counters.emitted) == emitted + 50


# -- the clock guard ---------------------------------------------------------------------------

MINUTE = 60_000
YEAR = 365 * 24 * 60 * MINUTE
WALL = 1_800_000_000_000


def test_guarded_now_ignores_and_counts_stamps_too_far_ahead() -> None:
    w = Window(10, 10)
    assert w.guarded_now([WALL - 5, WALL + 5 * MINUTE], WALL, 5 * MINUTE) == WALL + 5 * MINUTE
    assert w.counters.clock_skew == 0
    assert w.guarded_now([WALL - 5, WALL + 5 * MINUTE + 1, WALL + 10 * YEAR], WALL, 5 * MINUTE) == (
        WALL - 5
    )
    assert w.counters.clock_skew == 2
    check(w, [(1, S["SENT"], 0)], WALL)
    # Nothing acceptable: the window's own time, so the clock does not move.
    assert w.guarded_now([WALL + YEAR], WALL, MINUTE) == WALL
    assert w.counters.clock_skew == 3


def test_a_stamp_ten_years_ahead_among_replays_keeps_the_window() -> None:
    ttl = 60 * MINUTE
    w = Window(1_000, ttl)
    old = [msg(i) for i in range(50)]
    check(w, [(h, S["SENT"], p) for h, p in old], WALL)
    # Replays of the same reports with one record stamped ten years ahead.
    stamps = [WALL + MINUTE] * 50 + [WALL + 10 * YEAR]
    now = w.guarded_now(stamps, WALL + MINUTE, 5 * MINUTE)
    verdicts = check(w, [(h, S["SENT"], p) for h, p in old] + [(msg(99)[0], S["SENT"], 0)], now)
    assert verdicts == [DUPLICATE] * 50 + [EMIT]
    assert w.counters.clock_skew == 1 and sum(w.counters.expired) == 0
    # Later replays at the real time: still remembered (the clock was not pinned ahead).
    now = w.guarded_now([WALL + 2 * MINUTE], WALL + 2 * MINUTE, 5 * MINUTE)
    assert check(w, [(h, S["SENT"], p) for h, p in old], now) == [DUPLICATE] * 50
    assert len(w) == 51


def test_far_past_stamps_do_not_expire_the_window() -> None:
    w = Window(1_000, 60 * MINUTE)
    old = [msg(i) for i in range(20)]
    check(w, [(h, S["SENT"], p) for h, p in old], WALL)
    now = w.guarded_now([WALL - 10 * YEAR], WALL, 5 * MINUTE)
    assert check(w, [(h, S["SENT"], p) for h, p in old], now) == [DUPLICATE] * 20
    assert sum(w.counters.expired) == 0 and w.counters.clock_skew == 0


def test_a_dump_is_sized_by_what_the_window_holds() -> None:
    """The hint table is sized by capacity; a nearly empty window's dump must not be: one
    message in a window for a million is kilobytes, and a full window keeps its raw form."""
    big = keyed(cap=1_000_000, ttl=10_000_000)
    check(big, [(h, S["SENT"], 0) for h in big.hashes([b"uspeedo:one"])], 1)
    small_dump = big.dump()
    assert len(small_dump) < 64 * 1024, len(small_dump)
    restored = Window.restore(small_dump)
    assert restored.dump() == small_dump
    assert check(restored, [(h, S["SENT"], 0) for h in restored.hashes([b"uspeedo:one"])], 2) == [
        DUPLICATE
    ]
    full = keyed(cap=1_000)
    keys = [f"uspeedo:{i}".encode() for i in range(1_000)]
    check(full, [(h, S["SENT"], 0) for h in full.hashes(keys)], 1)
    full_dump = full.dump()
    assert Window.restore(full_dump).dump() == full_dump
    assert len(full_dump) >= 10 * 1_000 + len(full._hint)  # entries and the raw hint table
