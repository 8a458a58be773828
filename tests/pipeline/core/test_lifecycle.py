"""The message lifecycle fold: state records against a plain reference model."""

from __future__ import annotations

import itertools

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import EMIT, Lifecycle
from pipeline.core._lifecycle import SEND_TIME, Unpacked, epoch_s, pack, unpack
from pipeline.core.normalise import event_id, format_epoch_s
from pipeline.state import Window
from schemas import PROVIDER_INDEX, STATUS_INDEX, MessageState, Provider, Status

BASE_S = 1_717_484_400  # 2024-06-04T07:00:00Z
STATUS_NAMES: list[Status] = [
    "PENDING",
    "SENT",
    "UNKNOWN",
    "DELIVERED",
    "UNDELIVERED",
    "EXPIRED",
    "FAILED",
]


class Facts(msgspec.Struct):
    """The fields of an event a state record reads."""

    provider: Provider
    message_key: str
    account: str | None
    recipient: str
    message_id: str | None
    batch_id: str | None
    client_ref: str | None
    status: Status
    occurred_at: str | None
    sent_at: str | None


def facts(key: str, status: Status, occurred_s: int | None, sent_s: int | None = None) -> Facts:
    return Facts(
        "yunpian",
        key,
        "acct",
        "+8613711112222",
        key,
        None,
        None,
        status,
        None if occurred_s is None else format_epoch_s(occurred_s),
        None if sent_s is None else format_epoch_s(sent_s),
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
