"""The core's record types, Kafka's record sizing, and dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from ..errors import DecodeError

#: The per-record byte limit of a topic when the broker's is not known: Kafka's default
#: max.message.bytes (1048588) less a margin for the batch header (61 bytes) and for compression
#: framing. One record a topic refuses would stop the pipeline at every restart, so every output
#: and dead-letter record is sized against its topic's limit (key, value, headers, overhead).
DEFAULT_RECORD_MAX_BYTES: Final = 1_048_588 - 4096

Headers = Sequence[tuple[str, bytes]]


class InputRecord(NamedTuple):
    """One raw HTTP body as it sits on the input topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    headers: Headers
    value: bytes


class OutputRecord(NamedTuple):
    """One canonical event, ready for the producer (the output record contract)."""

    key: bytes
    value: bytes
    headers: Headers
    timestamp_ms: int


class DeadLetter(NamedTuple):
    """An input record that produced no events (or not all), with the reason in its headers.

    Keyed by its source `topic:partition:offset`: dead letters are written at least once (a
    replay writes them again), and the key lets a consumer or a compacted topic keep one.
    """

    key: bytes
    value: bytes
    headers: Headers
    timestamp_ms: int
    error_class: str


class BatchResult(NamedTuple):
    outputs: list[OutputRecord]
    dead_letters: list[DeadLetter]
    #: State records of the messages the outputs changed (a core with a `Lifecycle`).
    states: Sequence[OutputRecord] = ()


#: Kafka's per-record framing in a v2 batch, at its largest (length, attributes, timestamp and
#: offset deltas, key and value lengths, header count: varints), rounded up.
RECORD_OVERHEAD: Final = 64
#: Per header: its key and value lengths (varints).
HEADER_OVERHEAD: Final = 10
#: An event copies a body's text into at most four places (key, message_key, message_id or
#: batch_id, recipient...) and re-escaping at most doubles it (`%01` becomes `\u0001`); a header
#: (`account`) is copied once, a control byte escaped to 6 bytes; the rest is a few hundred
#: fixed bytes. So an event is below 16 x (body + header bytes) + 8 KiB, and only records above
#: (limit - 8 KiB) / 16 are sized exactly.
_AMPLIFICATION: Final = 16
_FIXED_EVENT_BYTES: Final = 8192


def _large_headers(record: InputRecord, small: int) -> bool:
    size = len(record.value)
    for _key, value in record.headers:
        size += len(value or b"")
    return size > small


def record_size(key: bytes | None, value: bytes, headers: Headers) -> int:
    """A conservative size of one record as Kafka counts it against max.message.bytes."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value)
    for hkey, hvalue in headers:
        size += len(hkey.encode()) + len(hvalue or b"") + HEADER_OVERHEAD
    return size


#: Room kept for the `error.original_size` and `error.headers_dropped` headers.
_CUT_HEADERS_ROOM: Final = 2 * (24 + 20 + HEADER_OVERHEAD)
_MAX_REPORTS_TEXT: Final = 65536


def _positions(reports: Sequence[int]) -> bytes:
    """Report positions as compact ranges (`0-3,7`), cut at 64 KiB with a trailing `...`."""
    parts: list[str] = []
    start = prev = reports[0]
    for n in (*reports[1:], -2):
        if n != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = n
        prev = n
    text = ",".join(parts)
    return (text if len(text) <= _MAX_REPORTS_TEXT else text[:_MAX_REPORTS_TEXT] + "...").encode()


#: Every header a dead letter gets beside the original ones (here, and in the Kafka sink).
DEAD_LETTER_HEADERS: Final = frozenset(
    {
        "error.class",
        "error.message",
        "error.reports",
        "error.original_size",
        "error.headers_dropped",
        "source.topic",
        "source.partition",
        "source.offset",
    }
)


def dead_letter(
    record: InputRecord, exc: DecodeError, max_bytes: int = DEFAULT_RECORD_MAX_BYTES
) -> DeadLetter:
    """The original bytes and headers, plus why and where from (the output record contract), keyed
    `topic:partition:offset`, as one record within `max_bytes` (the dead-letter topic's limit).

    The `error.*` and `source.*` headers are always kept. What is left is shared: the value
    keeps at least half of it (cut, with `error.original_size`), the original headers the rest;
    an original header that does not fit is dropped (`error.headers_dropped` counts them).
    """
    key = f"{record.topic}:{record.partition}:{record.offset}".encode()
    # The reason and the source come last, in this order (readers take the last five).
    ours = [
        ("error.class", exc.error_class.encode()),
        ("error.message", str(exc)[:1000].encode("utf-8", "replace")),
        ("source.topic", record.topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
    ]
    if exc.reports:
        ours.insert(0, ("error.reports", _positions(exc.reports)))
    value = record.value
    room = max_bytes - record_size(key, b"", ours) - _CUT_HEADERS_ROOM
    headers: list[tuple[str, bytes]] = []
    header_room = room - min(len(value), room // 2)
    dropped = 0
    for hkey, hvalue in record.headers:
        size = len(hkey.encode()) + len(hvalue or b"") + HEADER_OVERHEAD
        if size <= header_room:
            headers.append((hkey, hvalue))
            header_room -= size
            room -= size
        else:
            dropped += 1
    if len(value) > room:
        headers.append(("error.original_size", str(len(value)).encode()))
        value = value[: max(room, 0)]
    if dropped:
        headers.append(("error.headers_dropped", str(dropped).encode()))
    headers += ours
    return DeadLetter(key, value, headers, record.timestamp_ms, exc.error_class)
