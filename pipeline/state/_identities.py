"""The dedupe stage's verdicts on records that are already events (the repartition topic).

A repartition record is an output record: key ``<provider>:<message_key>``, headers
``status`` and ``provider``. Its window identity comes from the key's hash and the two header
codes, so the value is never decoded. I/O-free, like the rest of the core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

from schemas import PROVIDER_INDEX, STATUS_INDEX

from ..core import EMIT
from ._window import Window

#: Header values of our own records, straight to the window's codes (no decoding).
STATUS_CODES: Final = {s.encode(): i for s, i in STATUS_INDEX.items()}
PROVIDER_CODES: Final = {p.encode(): i for p, i in PROVIDER_INDEX.items()}


def header_codes(headers: Iterable[tuple[str, bytes]]) -> tuple[int, int] | None:
    """(status, provider) codes from an output record's headers; None if either is missing."""
    status = provider = None
    for name, value in headers:
        if name == "status":
            status = STATUS_CODES.get(value)
        elif name == "provider":
            provider = PROVIDER_CODES.get(value)
    return None if status is None or provider is None else (status, provider)


class Identities:
    """Window inputs of a run of records: the ones that carry an identity, and their indexes."""

    __slots__ = ("indexes", "keys", "providers", "stamps", "statuses")

    def __init__(
        self, records: Iterable[tuple[bytes | None, Iterable[tuple[str, bytes]], int]]
    ) -> None:
        self.indexes: list[int] = []
        self.keys: list[bytes] = []
        self.statuses: list[int] = []
        self.providers: list[int] = []
        self.stamps: list[int] = []
        for i, (key, headers, stamp) in enumerate(records):
            found = header_codes(headers)
            if found is None or key is None:
                continue
            self.indexes.append(i)
            self.keys.append(key)
            self.statuses.append(found[0])
            self.providers.append(found[1])
            self.stamps.append(stamp)

    def load(self, window: Window) -> None:
        """Mark these already-emitted records in `window` (a restore)."""
        if self.keys:
            now = max(self.stamps)
            window.load_batch(window.hashes(self.keys), self.statuses, self.providers, now)


def passing(
    window: Window,
    records: Sequence[tuple[bytes | None, Iterable[tuple[str, bytes]], int]],
    wall_ms: int,
    tolerance_ms: int,
    emitted: Counter[tuple[int, int]],
) -> list[int]:
    """Indexes of `records` (key, headers, timestamp) the window lets through, in order.

    A record without an identity (not one of ours: nothing else should be on the topic) is let
    through rather than lost. `emitted` counts what passes by (provider, status) code.
    """
    ids = Identities(records)
    if not ids.keys:
        return list(range(len(records)))
    now = window.guarded_now(ids.stamps, wall_ms, tolerance_ms)
    verdicts = window.check_batch(window.hashes(ids.keys), ids.statuses, ids.providers, now)
    emitted.update(
        (p, s) for p, s, v in zip(ids.providers, ids.statuses, verdicts, strict=True) if v == EMIT
    )
    dropped = {i for i, v in zip(ids.indexes, verdicts, strict=True) if v != EMIT}
    return [i for i in range(len(records)) if i not in dropped]
