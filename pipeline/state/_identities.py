"""The dedupe stage's verdicts on records that are already events (the repartition topic).

A repartition record is an output record: key ``<provider>:<message_key>``, headers
``event_id``, ``provider`` and ``status``, in that order. Its window identity comes from the
key's hash and the two header codes, so the value is never decoded. I/O-free, like the rest of
the core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import itemgetter
from typing import Final, cast

from schemas import PROVIDER_INDEX, STATUS_INDEX

from ..core import EMIT
from ._window import Window

Headers = Sequence[tuple[str, bytes]]
#: Header values of our own records, straight to the window's codes (no decoding).
STATUS_CODES: Final = {s.encode(): i for s, i in STATUS_INDEX.items()}
PROVIDER_CODES: Final = {p.encode(): i for p, i in PROVIDER_INDEX.items()}
#: The same by the whole header, for the records whose headers are as the core writes them.
_STATUS_HEADERS: Final = {("status", v): i for v, i in STATUS_CODES.items()}
_PROVIDER_HEADERS: Final = {("provider", v): i for v, i in PROVIDER_CODES.items()}
_SECOND, _THIRD = itemgetter(1), itemgetter(2)
#: Verdict byte → 1 when the record passes: the selector of `itertools.compress`.
_PASSES: Final = bytes(1 if v == EMIT else 0 for v in range(256))


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

    def __init__(self, records: Iterable[tuple[bytes | None, Headers, int]]) -> None:
        columns = list(zip(*records, strict=True))
        keys, headers, stamps = columns if columns else ((), (), ())
        self.read(keys, headers, stamps)

    @classmethod
    def of(
        cls, keys: Sequence[bytes | None], headers: Sequence[Headers], stamps: Sequence[int]
    ) -> Identities:
        """The identities of records given by column (key, headers, timestamp)."""
        ids = cls.__new__(cls)
        ids.read(keys, headers, stamps)
        return ids

    def read(
        self, keys: Sequence[bytes | None], headers: Sequence[Headers], stamps: Sequence[int]
    ) -> None:
        self.indexes: Sequence[int]
        self.keys: list[bytes]
        self.stamps: list[int] = list(stamps)
        # Every record as the core writes it (three headers, provider and status last): the
        # codes by two look-ups each, in C. The last `provider` and `status` headers are the
        # ones `header_codes` reads, so the codes are the same.
        if None not in keys and set(map(len, headers)) <= {3}:
            try:
                self.providers = list(map(_PROVIDER_HEADERS.__getitem__, map(_SECOND, headers)))
                self.statuses = list(map(_STATUS_HEADERS.__getitem__, map(_THIRD, headers)))
            except (KeyError, TypeError):
                pass
            else:
                self.keys = cast(list[bytes], list(keys))  # no None: checked above
                self.indexes = range(len(keys))
                return
        self.indexes, self.keys, self.statuses, self.providers = [], [], [], []
        stamped: list[int] = []
        for i, (key, found) in enumerate(zip(keys, map(header_codes, headers), strict=True)):
            if found is None or key is None:
                continue
            self.indexes.append(i)
            self.keys.append(key)
            self.statuses.append(found[0])
            self.providers.append(found[1])
            stamped.append(self.stamps[i])
        self.stamps = stamped

    def load(self, window: Window) -> None:
        """Mark these already-emitted records in `window` (a restore)."""
        if self.keys:
            now = max(self.stamps)
            window.load_batch(window.hashes(self.keys), self.statuses, self.providers, now)


def passing(
    window: Window,
    records: Sequence[tuple[bytes | None, Headers, int]],
    wall_ms: int,
    tolerance_ms: int,
    emitted: Counter[tuple[int, int]],
) -> list[int]:
    """Indexes of `records` (key, headers, timestamp) the window lets through, in order
    (`forwarded`, by index)."""
    keys, headers, stamps = zip(*records, strict=True) if records else ((), (), ())
    mask = forwarded(window, keys, headers, stamps, wall_ms, tolerance_ms, emitted)
    return list(compress(range(len(records)), mask))


def forwarded(
    window: Window,
    keys: Sequence[bytes | None],
    headers: Sequence[Headers],
    stamps: Sequence[int],
    wall_ms: int,
    tolerance_ms: int,
    emitted: Counter[tuple[int, int]],
) -> bytes | bytearray:
    """Per record (given by column), 1 if the window lets it through, else 0: the selector of
    `itertools.compress`.

    A record without an identity (not one of ours: nothing else should be on the topic) is let
    through rather than lost. `emitted` counts what passes by (provider, status) code.
    """
    ids = Identities.of(keys, headers, stamps)
    if not ids.keys:
        return b"\x01" * len(keys)
    now = window.guarded_now(ids.stamps, wall_ms, tolerance_ms)
    verdicts = window.check_batch(window.hashes(ids.keys), ids.statuses, ids.providers, now)
    passes = verdicts.translate(_PASSES)
    # Counted in C: a (provider, status) pair per event that passes.
    emitted.update(compress(zip(ids.providers, ids.statuses, strict=True), passes))
    if len(ids.keys) == len(keys):
        return passes
    mask = bytearray(b"\x01") * len(keys)
    for i, passed in zip(ids.indexes, passes, strict=True):
        mask[i] = passed
    return bytes(mask)
