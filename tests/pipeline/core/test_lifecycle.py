"""The message lifecycle fold: state records against a plain reference model."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import EMIT, Lifecycle, OutputRecord, Timeouts
from pipeline.core._lifecycle import (
    SEND_TIME,
    Facts,
    Unpacked,
    epoch_s,
    first_state,
    fold,
    message_state,
    pack,
    unpack,
)
from pipeline.core.normalise import event_id, format_epoch_s
from pipeline.state import Window
from schemas import PROVIDER_INDEX, STATUS_INDEX, MessageState, Status

BASE_S = 1_717_484_400  # 2024-06-04T07:00:00Z
ROOT = Path(__file__).resolve().parents[3]
DECODE = msgspec.json.Decoder(MessageState).decode
STATUS_NAMES: list[Status] = [
    "PENDING",
    "SENT",
    "UNKNOWN",
    "DELIVERED",
    "UNDELIVERED",
    "EXPIRED",
    "FAILED",
]


def facts(key: str, status: Status, occurred_s: int | None, sent_s: int | None = None) -> Facts:
    return Facts(
        provider="yunpian",
        message_key=key,
        account="acct",
        recipient="+8613711112222",
        message_id=key,
        status=status,
        occurred_at=None if occurred_s is None else format_epoch_s(occurred_s),
        sent_at=None if sent_s is None else format_epoch_s(sent_s),
        event_id=event_id("yunpian", key, status) if key != "k" else "",
    )


# The reference model: a few lines of dicts, folded over the emitted events in order.
REF_RANK = {"PENDING": 1, "SENT": 2, "UNKNOWN": 3}


def reference(emitted: list[tuple[Status, int]], first_seen: int) -> dict[str, object]:
    """``emitted``: (status, its time in s) of each emitted event, in order."""
    status = None
    finals: list[str] = []
    times: dict[str, int] = {}
    for s, at in emitted:
        rank = REF_RANK.get(s, 4)
        if status is None or rank > REF_RANK.get(status, 4):
            status = s
        if rank == 4:
            finals.append(s)
            times.setdefault("final", at)
        elif s == "PENDING":
            times.setdefault("submitted", at)
        elif s == "SENT":
            times.setdefault("sent", at)
    start = times.get("sent", times.get("submitted"))
    final = times.get("final")
    return {
        "status": status,
        "finality": "final" if finals else "soft_final" if status == "UNKNOWN" else "intermediate",
        "statuses": [s for s, _ in emitted],
        "conflict": len(set(finals)) > 1,
        "first_seen_at": format_epoch_s(first_seen),
        "submitted_at": format_epoch_s(times["submitted"]) if "submitted" in times else None,
        "sent_at": format_epoch_s(times["sent"]) if "sent" in times else None,
        "final_at": format_epoch_s(final) if final is not None else None,
        "delivery_latency_ms": (final - start) * 1000
        if final is not None and start is not None
        else None,
    }


def observed(state: MessageState) -> dict[str, object]:
    return {
        "status": state.status,
        "finality": state.finality,
        "statuses": [s.status for s in state.statuses],
        "conflict": state.conflict,
        "first_seen_at": state.first_seen_at,
        "submitted_at": state.submitted_at,
        "sent_at": state.sent_at,
        "final_at": state.final_at,
        "delivery_latency_ms": state.delivery_latency_ms,
    }


report = st.tuples(
    st.integers(0, 2),  # which message
    st.sampled_from(STATUS_NAMES),
    st.one_of(st.none(), st.integers(-40_000, 40_000)),  # provider time, from the base
    st.integers(0, 3),  # seconds after the previous report (record time)
)


@settings(max_examples=150, deadline=None)
@given(reports=st.lists(report, min_size=1, max_size=30), cuts=st.sets(st.integers(1, 29)))
def test_last_state_equals_the_reference_model(
    reports: list[tuple[int, Status, int | None, int]], cuts: set[int]
) -> None:
    """Any interleaving of reports (duplicates, stale intermediates, conflicting finals), in
    batches of any size: each message's last state record is the reference model over the
    events the window emitted, and versions strictly increase per key."""
    window = Window(1000, 86_400_000)
    lifecycle = Lifecycle(window)
    decode = msgspec.json.Decoder(MessageState).decode
    emitted: dict[str, list[tuple[Status, int]]] = {}
    first_seen: dict[str, int] = {}
    last: dict[str, MessageState] = {}
    stamp = BASE_S * 1000
    bounds = [0, *sorted(c for c in cuts if c < len(reports)), len(reports)]
    for lo, hi in itertools.pairwise(bounds):
        batch = []
        for which, status, occurred, gap in reports[lo:hi]:
            stamp += gap * 1000 + 7  # milliseconds: times are kept to the second
            at = None if occurred is None else BASE_S + occurred
            batch.append((facts(f"m{which}", status, at), stamp))
        keys = [f"yunpian:{f.message_key}".encode() for f, _ in batch]
        verdicts = window.check_batch(
            window.hashes(keys),
            [STATUS_INDEX[f.status] for f, _ in batch],
            [PROVIDER_INDEX["yunpian"]] * len(batch),
            max(s for _, s in batch),
        )
        records = lifecycle.states([f for f, _ in batch], keys, verdicts, [s for _, s in batch])
        assert len(records) == verdicts.count(EMIT)
        chosen = [b for b, v in zip(batch, verdicts, strict=True) if v == EMIT]
        for (f, s), record in zip(chosen, records, strict=True):
            key = f.message_key
            first_seen.setdefault(key, s // 1000)
            at = epoch_s(f.occurred_at) if f.occurred_at else s // 1000
            emitted.setdefault(key, []).append((f.status, at))
            state = decode(record.value)
            assert record.key == f"yunpian:{key}".encode() and record.timestamp_ms == s
            if key in last:
                assert state.version > last[key].version
            last[key] = state
            assert state.statuses[-1].event_id == event_id("yunpian", key, f.status)
    for key, state in last.items():
        assert observed(state) == reference(emitted[key], first_seen[key])
        assert (state.provider, state.message_key, state.account) == ("yunpian", key, "acct")


@settings(max_examples=300, deadline=None)
@given(
    timed_out=st.booleans(),
    first=st.integers(0, (1 << 34) - 1),
    entries=st.lists(
        st.tuples(st.integers(1, 10), st.integers(-(1 << 38), 1 << 38)), min_size=0, max_size=10
    ),
)
def test_pack_round_trip(timed_out: bool, first: int, entries: list[tuple[int, int]]) -> None:
    entries = [(k, first + d) for k, d in entries]
    back = unpack(pack(Unpacked(timed_out, first, entries)))
    assert (back.timed_out, back.first, back.entries) == (timed_out, first, entries)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from(STATUS_NAMES),
    occurred=st.one_of(st.none(), st.integers(-40_000, 40_000)),
    sent=st.one_of(st.none(), st.integers(-40_000, 40_000)),
    stamp_s=st.integers(-5, 80_000),
    clock_s=st.sampled_from([0, 40_000]),
)
def test_a_first_status_is_the_general_fold_of_one_event(
    status: Status, occurred: int | None, sent: int | None, stamp_s: int, clock_s: int
) -> None:
    """A message's first state (built without the general loop) is what folding its one event
    into no data gives: same packed data, same record."""
    at, sent_s = (None if t is None else BASE_S + t for t in (occurred, sent))
    f = facts("m", status, at, sent_s)
    stamp, clock = (BASE_S + stamp_s) * 1000 + 7, (BASE_S + clock_s) * 1000 if clock_s else 0
    data, state = fold(0, f, stamp, clock)
    general = message_state(f, state, 160, "u", (status, f.event_id))
    assert first_state(f, f.event_id, stamp, clock, 160, "u") == (data, state.first, general)


def test_three_statuses_fit_one_small_int() -> None:
    """Three statuses within hours of the first report: at most 111 bits, so with the window's
    9-bit mask one 40-byte int object (the 120-byte bar of benchmarks/window_bench.py)."""
    data = pack(Unpacked(False, BASE_S, [(1, BASE_S - 2), (2, BASE_S + 30), (4, BASE_S + 9000)]))
    assert data.bit_length() <= 111


def test_send_time_carried_by_an_event_is_sent_at_until_a_sent_status() -> None:
    window = Window(100, 86_400_000)
    lifecycle = Lifecycle(window)
    key = b"yunpian:k"
    decode = msgspec.json.Decoder(MessageState).decode

    def emit(status: Status, at: int, sent: int | None) -> MessageState:
        f = facts("k", status, at, sent)
        v = window.check_batch(window.hashes([key]), [STATUS_INDEX[status]], [2], at * 1000)
        (record,) = lifecycle.states([f], [key], v, [at * 1000])
        return decode(record.value)

    first = emit("PENDING", BASE_S, BASE_S - 60)
    assert first.sent_at == format_epoch_s(BASE_S - 60)
    assert [s.status for s in first.statuses] == ["PENDING"]  # a send time is no status
    done = emit("DELIVERED", BASE_S + 10, BASE_S - 60)
    assert done.delivery_latency_ms == 70_000
    assert unpack(window.state_of(window.hashes([key])[0])).entries[1][0] == SEND_TIME


def test_duplicates_and_stale_reports_make_no_state_record() -> None:
    window = Window(100, 86_400_000)
    lifecycle = Lifecycle(window)
    key = b"yunpian:k"
    h = window.hashes([key])
    v = window.check_batch(h * 3, [3, 3, 0], [2, 2, 2], BASE_S * 1000)
    assert list(v) == [EMIT, 1, 2]
    f = [facts("k", "DELIVERED", None), facts("k", "DELIVERED", None), facts("k", "PENDING", None)]
    records = lifecycle.states(f, [key] * 3, v, [BASE_S * 1000] * 3)
    assert len(records) == 1
    before = window.state_of(h[0])
    v = window.check_batch(h, [3], [2], BASE_S * 1000 + 5)
    assert lifecycle.states(f[:1], [key], v, [BASE_S * 1000 + 5]) == []
    assert window.state_of(h[0]) == before


def test_version_grows_when_a_message_comes_back_and_across_a_restore() -> None:
    """Versions follow the window's clock: a message forgotten (ttl) and reported again, or a
    window restored in another process, never writes a lower version."""
    window = Window(100, 60_000, hash_key=b"k" * 16)
    key = b"yunpian:k"
    decode = msgspec.json.Decoder(MessageState).decode
    versions = []

    def emit(w: Window, status: Status, stamp: int) -> None:
        v = w.check_batch(w.hashes([key]), [STATUS_INDEX[status]], [2], stamp)
        (record,) = Lifecycle(w).states([facts("k", status, None)], [key], v, [stamp])
        versions.append(decode(record.value).version)

    start = BASE_S * 1000
    emit(window, "PENDING", start)
    emit(window, "SENT", start)
    emit(window, "DELIVERED", start + 1)
    emit(window, "PENDING", start + 200_000)  # forgotten after the ttl: a new lifecycle
    window = Window.restore(window.dump())
    emit(window, "SENT", start + 200_000)
    assert versions == sorted(set(versions)), versions


# -- final-timeouts: on stream time, once per message, never early, kept through a restore --

T0 = BASE_S * 1000
MINUTE = 60_000
YEAR = 365 * 86_400_000


def new(timeout_ms: int = MINUTE) -> Lifecycle:
    return Lifecycle(Window(1000, 86_400_000), Timeouts(timeout_ms, {"tencent": 5 * MINUTE}))


def feed(life: Lifecycle, reports: list[tuple[str, Status]], stamp: int) -> list[OutputRecord]:
    """One batch at record time `stamp`: its state records, then what timed out."""
    w = life.window
    keys = [f"yunpian:{k}".encode() for k, _ in reports]
    verdicts = w.check_batch(
        w.hashes(keys), [STATUS_INDEX[s] for _, s in reports], [2] * len(reports), stamp
    )
    got = life.states([facts(k, s, None) for k, s in reports], keys, verdicts, [stamp] * len(keys))
    assert len(got) == verdicts.count(EMIT)
    return got + life.expire()


def timed_out(records: list[OutputRecord]) -> list[tuple[bytes, int, MessageState]]:
    states = [(r.key, r.timestamp_ms, DECODE(r.value)) for r in records]
    return [s for s in states if s[2].timed_out]


def test_a_message_without_final_times_out_once_at_its_deadline() -> None:
    life = new()
    feed(life, [("a", "PENDING"), ("b", "PENDING"), ("c", "UNKNOWN")], T0)
    feed(life, [("b", "DELIVERED")], T0 + 5_000)
    assert timed_out(feed(life, [("x", "DELIVERED")], T0 + MINUTE - 1)) == []
    fired = timed_out(feed(life, [("y", "DELIVERED")], T0 + MINUTE))
    assert sorted((k, t) for k, t, _ in fired) == [
        (b"yunpian:a", T0 + MINUTE),
        (b"yunpian:c", T0 + MINUTE),
    ]
    a = next(s for k, _, s in fired if k == b"yunpian:a")
    assert (a.status, a.final_at, a.timed_out) == ("PENDING", None, True)  # no invented receipt
    assert a.statuses[0].status == "PENDING" and a.recipient == "+8613711112222"
    assert timed_out(feed(life, [("z", "DELIVERED")], T0 + 10 * MINUTE)) == []  # once
    # A final after the time-out still updates the message; timed_out stays true.
    (late,) = feed(life, [("a", "DELIVERED")], T0 + 11 * MINUTE)
    state = DECODE(late.value)
    assert (state.status, state.timed_out, state.final_at) == (
        "DELIVERED",
        True,
        "2024-06-04T07:11:00Z",
    )
    assert state.version > a.version
    assert len(life.timeouts or ()) == 0
    assert life.counters.timed_out["yunpian"] == 2


def test_a_replayed_backlog_times_nothing_out_early() -> None:
    """Record time, not the wall clock: a day-old stream whose records span less than the
    timeout times nothing out, however late it is replayed."""
    life = new()
    day_ago = T0 - 86_400_000
    for i in range(50):
        assert timed_out(feed(life, [(f"m{i}", "PENDING")], day_ago + i * 1000)) == []
    fired = timed_out(feed(life, [("late", "DELIVERED")], day_ago + MINUTE + 1000))
    assert [k for k, _, _ in fired] == [b"yunpian:m0", b"yunpian:m1"]


def test_a_restored_window_fires_what_was_pending_once() -> None:
    """Rebuilt from the events (a restore from the output): what was due by the restored clock
    fired before and is not fired again; what was not due yet fires once, at its deadline."""
    life = new()
    outputs: list[tuple[bytes, bytes, int]] = []

    def emit(key: str, status: Status, stamp: int) -> None:
        records = feed(life, [(key, status)], stamp)
        event = msgspec.json.encode(facts(key, status, None))
        if any(not DECODE(r.value).timed_out for r in records):
            outputs.append((f"yunpian:{key}".encode(), event, stamp))

    emit("old", "PENDING", T0)
    emit("new", "PENDING", T0 + 50_000)
    emit("done", "DELIVERED", T0 + MINUTE + 1000)  # "old" times out here
    again = new()
    keys = [k for k, _, _ in outputs]
    # What a restore does: the events marked in the window, then folded (values decoded).
    window = again.window
    assert isinstance(window, Window)
    window.load_batch(window.hashes(keys), [0, 0, 3], [2] * 3, T0 + MINUTE + 1000)
    again.replay([v for _, v, _ in outputs], keys, [s for _, _, s in outputs])
    again.expire(emit=False)
    assert timed_out(feed(again, [("x", "DELIVERED")], T0 + MINUTE + 2000)) == []
    fired = timed_out(feed(again, [("y", "DELIVERED")], T0 + 50_000 + MINUTE))
    assert [k for k, _, _ in fired] == [b"yunpian:new"]


def test_waiting_messages_survive_a_dump() -> None:
    life = new()
    feed(life, [("a", "PENDING"), ("b", "SENT")], T0)
    assert life.timeouts is not None
    back = Timeouts(MINUTE)
    back.load(life.timeouts.dump())
    assert [(p, w) for p, _, w in back.due(T0 + MINUTE)] == [
        (p, w) for p, _, w in life.timeouts.due(T0 + MINUTE)
    ]


def test_a_record_stamped_years_ahead_does_not_put_off_its_time_out() -> None:
    """The window ignored the stamp (too far ahead of the wall clock): the message counts as
    first reported at the window's clock, and times out a timeout after that."""
    life = new()
    feed(life, [("x", "DELIVERED")], T0)
    w = life.window
    key = b"yunpian:ahead"
    verdicts = w.check_batch(w.hashes([key]), [STATUS_INDEX["PENDING"]], [2], T0)
    (record,) = life.states([facts("ahead", "PENDING", None)], [key], verdicts, [T0 + 10 * YEAR])
    assert DECODE(record.value).first_seen_at == format_epoch_s(BASE_S)
    fired = timed_out(feed(life, [("y", "DELIVERED")], T0 + MINUTE))
    assert [(k, t) for k, t, _ in fired] == [(key, T0 + MINUTE)]


def test_at_most_the_window_capacity_waits_the_oldest_dropped_and_counted() -> None:
    window = Window(1000, 86_400_000)
    life = Lifecycle(window, Timeouts(MINUTE, {"tencent": 5 * MINUTE}, capacity=2))
    feed(life, [("a", "PENDING")], T0)
    feed(life, [("b", "PENDING")], T0 + 1000)
    # "a" gets a newer identity and keeps its place (its first report, its deadline).
    feed(life, [("a", "SENT")], T0 + 2000)
    assert life.counters.forgotten["yunpian"] == 0
    feed(life, [("c", "PENDING")], T0 + 3000)
    assert life.timeouts is not None and len(life.timeouts) == 2
    assert life.counters.forgotten["yunpian"] == 1
    fired = timed_out(feed(life, [("x", "DELIVERED")], T0 + MINUTE + 3000))
    assert [(k, t) for k, t, _ in fired] == [
        (b"yunpian:b", T0 + MINUTE + 1000),
        (b"yunpian:c", T0 + MINUTE + 3000),
    ]
    assert len(life.timeouts) == 0


def test_a_timeout_not_shorter_than_the_window_is_refused() -> None:
    for flags, name in (
        (["--final-timeout-s", "86400"], "final_timeout_s"),
        (["--final-timeouts", "yunpian=90000"], "final_timeouts yunpian"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "--from", "-", "--state-to", "-", *flags],
            input=b"",
            capture_output=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert f"invalid setting {name}:".encode() in result.stderr
        assert b"not shorter than window_ttl_s (86400 s)" in result.stderr


def test_an_idle_clock_times_out_without_moving_the_window() -> None:
    """The wall-clock rule of an idle partition fires what is due by it, but the window keeps
    its record-time clock (a replay after a pause still dedupes) and versions follow that."""
    life = new()
    (first,) = feed(life, [("a", "PENDING")], T0)
    (fired,) = timed_out(life.expire(idle_ms=T0 + 30 * MINUTE))
    assert fired[0] == b"yunpian:a" and fired[1] == T0 + MINUTE
    assert life.window.clock == T0
    assert fired[2].version > DECODE(first.value).version
    (late,) = feed(life, [("a", "DELIVERED")], T0 + 1)
    assert DECODE(late.value).version > fired[2].version
    # Still held (a replay of its first report is a duplicate): nothing expired.
    assert list(life.window.check_batch(life.window.hashes([b"yunpian:a"]), [0], [2], T0)) == [1]


def test_a_timeout_read_back_from_the_state_topic_is_not_fired_again() -> None:
    """A restore marks timed out, with no record, the waiting messages whose state record says
    so (the idle rule fired them, stream time short of their deadlines); a record stamped before
    a message's first report is an earlier life of its key and marks nothing."""
    life = new()
    feed(life, [("a", "PENDING"), ("b", "PENDING"), ("c", "PENDING")], T0)
    assert life.timeouts is not None and life.timeouts.earliest() == T0 + MINUTE
    fired = timed_out(life.expire(idle_ms=T0 + MINUTE))
    keys, stamps = [k for k, _, _ in fired], [t for _, t, _ in fired]
    again = new()
    feed(again, [("a", "PENDING"), ("b", "PENDING"), ("c", "PENDING")], T0)
    assert again.fired_before([*keys[:2], keys[2]], [*stamps[:2], T0 - 1]) == 2
    assert again.fired_before(keys[:1], stamps[:1]) == 0  # no longer waiting
    later = timed_out(again.expire(idle_ms=T0 + 2 * MINUTE))
    assert [k for k, _, _ in later] == [b"yunpian:c"]
    # Marked timed out: a final still updates the message, and says it timed out.
    (final,) = feed(again, [("a", "DELIVERED")], T0 + 1000)
    assert DECODE(final.value).timed_out
    assert life.fired_before([], []) == 0
