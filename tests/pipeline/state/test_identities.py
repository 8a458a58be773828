"""Dedupe-stage verdicts from key and header codes, without decoding values."""

from __future__ import annotations

from collections import Counter

from pipeline.state import Identities, Window, header_codes, passing

T = 1_700_000_000_000


def rec(
    key: bytes | None, status: bytes, provider: bytes = b"tencent", stamp: int = T
) -> tuple[bytes | None, list[tuple[str, bytes]], int]:
    return (key, [("event_id", b"x"), ("provider", provider), ("status", status)], stamp)


def test_codes_need_both_headers() -> None:
    assert header_codes([("provider", b"tencent"), ("status", b"DELIVERED")]) is not None
    assert header_codes([("provider", b"tencent")]) is None
    assert header_codes([("provider", b"nobody"), ("status", b"DELIVERED")]) is None


def test_copies_and_stale_are_dropped_in_order() -> None:
    window = Window(1000, 86_400_000)
    batch = [
        rec(b"tencent:a", b"DELIVERED"),
        rec(b"tencent:a", b"DELIVERED"),  # copy
        rec(b"tencent:b", b"SENT"),
        rec(b"tencent:a", b"SENT"),  # stale after a final status
    ]
    emitted: Counter[tuple[int, int]] = Counter()
    assert passing(window, batch, T, 300_000, emitted) == [0, 2]
    assert sum(emitted.values()) == 2
    assert passing(window, batch, T, 300_000, emitted) == []  # a replay passes nothing
    assert sum(emitted.values()) == 2


def test_records_without_identity_pass() -> None:
    window = Window(1000, 86_400_000)
    batch = [rec(None, b"DELIVERED"), rec(b"tencent:a", b"nonsense"), rec(b"tencent:a", b"SENT")]
    assert passing(window, batch, T, 300_000, Counter()) == [0, 1, 2]


def test_loaded_records_are_known() -> None:
    window = Window(1000, 86_400_000)
    Identities([rec(b"tencent:a", b"DELIVERED")[:3]]).load(window)
    assert passing(window, [rec(b"tencent:a", b"DELIVERED")], T, 300_000, Counter()) == []
    assert passing(window, [rec(b"tencent:c", b"DELIVERED")], T, 300_000, Counter()) == [0]


def test_codes_are_those_header_codes_reads() -> None:
    """Records as the core writes them are read by position, any others header by header: the
    codes are the same either way (the last `provider` and `status` headers count)."""
    core = [rec(b"tencent:a", b"DELIVERED"), rec(b"uspeedo:b", b"SENT", b"uspeedo")]
    others = [
        (b"tencent:c", [("status", b"SENT"), ("provider", b"tencent")], T),
        (b"tencent:d", [*rec(b"x", b"SENT")[1], ("status", b"DELIVERED")], T),
        (b"tencent:e", [("provider", b"tencent"), ("event_id", b"x"), ("status", b"SENT")], T),
        (b"tencent:f", [("status", b"SENT"), ("provider", b"yunpian"), ("status", b"FAILED")], T),
    ]
    for batch in (core, core + others):
        ids = Identities(batch)
        got = list(zip(ids.indexes, zip(ids.statuses, ids.providers, strict=True), strict=True))
        assert got == [(i, header_codes(headers)) for i, (_, headers, _) in enumerate(batch)]
