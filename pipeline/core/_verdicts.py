"""The dedupe verdicts and the encode stage: events in, keyed output records out, counted.

The core decides nothing about state: a window (in the state layer) implements `DedupeWindow`
and answers EMIT, DUPLICATE or STALE per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import compress, repeat
from typing import Final, NamedTuple, Protocol

import msgspec

from schemas import PROVIDER_INDEX, STATUS_INDEX, ReceiptEvent

from ._records import OutputRecord

EMIT: Final = 0
DUPLICATE: Final = 1
STALE: Final = 2


class DedupeWindow(Protocol):
    """What the core asks of a dedupe window."""

    def guarded_now(self, stamps: Iterable[int], wall_ms: int, tolerance_ms: int) -> int:
        """The batch's window time from its record times, guarded against a far-future one."""
        ...

    def hashes(self, keys: Sequence[bytes]) -> list[int]:
        """The window's hash of each output record key."""
        ...

    def check_batch(
        self, hashes: Sequence[int], statuses: Sequence[int], providers: Sequence[int], now_ms: int
    ) -> bytearray:
        """EMIT, DUPLICATE or STALE per event, the events admitted to the window."""
        ...


_ENCODER = msgspec.json.Encoder()
# Header values repeat endlessly: each distinct header is built once and shared.
_PROVIDER_HEADER: Final = {p: ("provider", p.encode()) for p in PROVIDER_INDEX}
_STATUS_HEADER: Final = {s: ("status", s.encode()) for s in STATUS_INDEX}
#: Verdict byte → 1 when the event is emitted: the selector of `itertools.compress`.
_IS_EMITTED: Final = bytes(1 if v == EMIT else 0 for v in range(256))
#: An event's provider and status in one byte (`Verdicts.codes`), and back: the status in the
#: low bits (as many as the status codes need), the provider above.
_STATUS_BITS: Final = (len(STATUS_INDEX) - 1).bit_length()
_PROVIDER_BASE: Final = {p: i << _STATUS_BITS for p, i in PROVIDER_INDEX.items()}
_STATUS_OF: Final = bytes(c & ((1 << _STATUS_BITS) - 1) for c in range(256))
_PROVIDER_OF: Final = bytes(c >> _STATUS_BITS for c in range(256))
_PROVIDER_STATUS: Final = {
    _PROVIDER_BASE[p] | STATUS_INDEX[s]: (p, s) for p in PROVIDER_INDEX for s in STATUS_INDEX
}


class Verdicts(NamedTuple):
    """The dedupe stage's result on a batch of events, one item per event."""

    keys: list[bytes]  # the output record keys, `<provider>:<message_key>`
    codes: bytes  # provider code above the status code, one byte (see _STATUS_BITS)
    verdicts: bytearray  # EMIT, DUPLICATE or STALE


def window_verdicts(
    window: DedupeWindow | None, events: Sequence[ReceiptEvent], now_ms: int
) -> Verdicts:
    """The events' keys, codes and the window's verdict on each (the dedupe stage); no window:
    every event is emitted (the route stage of topology `partitioned`)."""
    keys = [f"{e.provider}:{e.message_key}".encode() for e in events]
    base, status_code = _PROVIDER_BASE, STATUS_INDEX
    codes = bytes([base[e.provider] | status_code[e.status] for e in events])
    if window is None:
        return Verdicts(keys, codes, bytearray((EMIT,)) * len(events))
    verdicts = window.check_batch(
        window.hashes(keys), codes.translate(_STATUS_OF), codes.translate(_PROVIDER_OF), now_ms
    )
    return Verdicts(keys, codes, verdicts)


def emitted_outputs(
    events: Sequence[ReceiptEvent],
    keys: Sequence[bytes],
    codes: bytes,
    verdicts: bytes | bytearray,
    stamps: Sequence[int],
    events_out: Counter[tuple[str, str]],
) -> list[OutputRecord]:
    """The output records of the events the window emits (the encode stage), counted.

    One Python-level loop per emitted event (its value and headers); the rest is C iterators.
    """
    emit = verdicts.translate(_IS_EMITTED)
    provider_header, status_header = _PROVIDER_HEADER, _STATUS_HEADER
    # `encode` starts every event in a small buffer grown by realloc (~1 000 instructions for
    # an event's ~700 bytes); this buffer keeps its size, each value is copied out once. One
    # per call: cores may run on worker threads.
    buffer = bytearray()
    into = _ENCODER.encode_into
    values: list[bytes] = []
    headers: list[list[tuple[str, bytes]]] = []
    value, header = values.append, headers.append
    for event in compress(events, emit):
        into(event, buffer)
        value(bytes(buffer))
        # A list: aiokafka's batch builder takes nothing else.
        header(
            [
                ("event_id", event.event_id.encode()),
                provider_header[event.provider],
                status_header[event.status],
            ]
        )
    columns = zip(compress(keys, emit), values, headers, compress(stamps, emit), strict=True)
    # tuple.__new__ skips the named tuple's Python-level __new__ (0.19 µs against 0.52).
    outputs: list[OutputRecord] = list(map(tuple.__new__, repeat(OutputRecord), columns))
    # Counted in C by small-int code, then named: not a (provider, status) tuple per event.
    for code, n in Counter(compress(codes, emit)).items():
        events_out[_PROVIDER_STATUS[code]] += n
    return outputs
