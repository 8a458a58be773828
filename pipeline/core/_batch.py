"""The I/O-free core: raw records in, canonical output records and dead letters out.

decode → normalise → dedupe → encode, one call per batch of records. The Kafka loop and the
embedded file mode are thin shells around `Core.process`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import compress, repeat
from typing import Final, NamedTuple

import msgspec

from schemas import PROVIDER_INDEX, STATUS_INDEX, ReceiptEvent

from ..state._window import EMIT, Window
from .normalise._context import RecordContext
from .normalise._errors import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_RECORD_MAX_BYTES,
    BodyTooLarge,
    DecodeError,
    EventTooLarge,
    NotReceipts,
    PartialBody,
    UnknownFormat,
)
from .normalise._lookup import UNMAPPED_STATUSES
from .normalise._timefmt import format_epoch_ms, zone
from .normalise._times import UNPARSED_TIMES
from .providers import REGISTRY, SKIP_KINDS, ProviderModule

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
    """One canonical event, ready for the producer (DESIGN.md section 2)."""

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


class Route(NamedTuple):
    provider: str
    endpoint: str | None


class CoreConfig(msgspec.Struct, kw_only=True):
    """What the core needs to know beyond the records themselves."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Per-record byte limits of the output and dead-letter topics (key + value + headers +
    #: record overhead); the Kafka layer sets them from the topics' max.message.bytes at start.
    output_max_bytes: int = DEFAULT_RECORD_MAX_BYTES
    dead_letter_max_bytes: int = DEFAULT_RECORD_MAX_BYTES
    #: topic → (provider, endpoint or None); consulted when a record has no `provider` header.
    topic_routes: dict[str, Route] = msgspec.field(default_factory=dict)
    #: "provider" or "provider/account" → IANA zone for naive times.
    time_zones: dict[str, str] = msgspec.field(default_factory=dict)
    #: Records stamped further ahead of the wall clock do not move the window's clock.
    clock_skew_tolerance_ms: int = 300_000


class BatchResult(NamedTuple):
    outputs: list[OutputRecord]
    dead_letters: list[DeadLetter]


class CoreStats:
    """Counters of the core; the window keeps its own (emitted, duplicates, stale, evictions)."""

    def __init__(self) -> None:
        self.records_in: Counter[str] = Counter()  # by provider ("unknown" when unresolved)
        self.receipts_in: Counter[str] = Counter()  # by provider
        self.events_out: Counter[tuple[str, str]] = Counter()  # by (provider, status)
        #: Events counted out that the output topic then refused (too large, stamped outside
        #: its window): the Kafka sink dead-letters them and counts them here and in
        #: dead_letters, by (provider, status).
        self.events_refused: Counter[tuple[str, str]] = Counter()
        self.dead_letters: Counter[str] = Counter()  # by error class
        self.skipped: Counter[str] = Counter()  # by kind, e.g. "ultiroam.ussd"
        self._unmapped_before = Counter(UNMAPPED_STATUSES)
        self._unparsed_before = Counter(UNPARSED_TIMES)

    @property
    def unmapped_statuses(self) -> Counter[str]:
        """Unmapped statuses seen since these stats were created.

        Decoders count into one process-wide counter (map_status has no stats at hand); one
        process runs one core, and this view subtracts what came before it.
        """
        return UNMAPPED_STATUSES - self._unmapped_before

    @property
    def unparsed_times(self) -> Counter[str]:
        """Time values that could not be read since these stats were created, by provider (the
        events carry a null time and the raw text); process-wide like `unmapped_statuses`."""
        return UNPARSED_TIMES - self._unparsed_before


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


def sniff(body: bytes) -> Route | None:
    """The provider and endpoint of an unlabelled body, from its shape alone."""
    for module in REGISTRY.values():
        endpoint = module.sniff(body)
        if endpoint is not None:
            return Route(module.PROVIDER, endpoint)
    return None


#: The input headers that route a record (DESIGN.md section 2).
_ROUTING_HEADERS: Final = frozenset({"provider", "endpoint", "account", "tz"})


def _routing_headers(headers: Headers) -> dict[str, str]:
    """The routing headers of a record, in one pass; the first of a repeated name wins."""
    found: dict[str, str] = {}
    for key, value in headers:
        if key in _ROUTING_HEADERS and key not in found and value is not None:
            found[key] = value.decode("utf-8", "replace")
    return found


class Decoder:
    """Routes a record to its provider module and decodes it; counts what it sees."""

    def __init__(self, config: CoreConfig | None = None) -> None:
        self.config = config or CoreConfig()
        self.stats = CoreStats()
        for name in self.config.time_zones.values():
            zone(name)  # fail at start, not on the first record

    def _route(self, record: InputRecord) -> tuple[ProviderModule, str, str | None, str | None]:
        """(module, endpoint, account header, tz) for a record, or UnknownFormat."""
        headers = record.headers
        provider = endpoint = account = tz = None
        if headers:
            found = _routing_headers(headers)
            provider, endpoint = found.get("provider"), found.get("endpoint")
            account, tz = found.get("account"), found.get("tz")
        if provider is None:
            route = self.config.topic_routes.get(record.topic)
            if route is not None:
                provider, endpoint = route.provider, endpoint or route.endpoint
        if provider is None:
            route = sniff(record.value)
            if route is None:
                raise UnknownFormat("provider not in headers or topic mapping, body shape unknown")
            provider, endpoint = route
        module = REGISTRY.get(provider)
        if module is None:
            raise UnknownFormat(f"unknown provider {provider!r}")
        if endpoint is None:
            endpoint = module.sniff(record.value)
            if endpoint is None:
                raise UnknownFormat(f"body is not a known {provider} format")
        if tz is None and self.config.time_zones:
            zones = self.config.time_zones
            tz = zones.get(f"{provider}/{account}") if account else None
            tz = tz or zones.get(provider)
        return module, endpoint, account, tz

    def decode(self, record: InputRecord) -> list[ReceiptEvent]:
        """Events of one record; raises DecodeError (dead letter) or NotReceipts (skip)."""
        if len(record.value) > self.config.max_body_bytes:
            raise BodyTooLarge(
                f"body of {len(record.value)} bytes exceeds the limit of "
                f"{self.config.max_body_bytes}"
            )
        module, endpoint, account, tz = self._route(record)
        self.stats.records_in[module.PROVIDER] += 1
        topic, partition, offset, stamp, _, value = record
        ctx = RecordContext(topic, partition, offset, stamp, account, tz, format_epoch_ms(stamp))
        return module.decode(value, endpoint, ctx)


class Core:
    """decode → normalise → dedupe → encode; stateful only through its window and counters."""

    def __init__(
        self,
        window: Window | None,
        config: CoreConfig | None = None,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """``window`` None: no dedupe, every event is emitted (the route stage of topology
        ``partitioned``, whose windows live in the dedupe stage). ``wall_ms``: the wall clock in
        ms (injected by tests), read once per batch."""
        self.window = window
        self.decoder = Decoder(config)
        self.stats = self.decoder.stats
        self.wall_ms = wall_ms
        config = self.decoder.config
        self.limit_records(config.output_max_bytes, config.dead_letter_max_bytes)

    def limit_records(self, output_max_bytes: int, dead_letter_max_bytes: int) -> None:
        """Size output and dead-letter records against these limits (the Kafka layer learns
        the topics' real ones at start)."""
        config = self.decoder.config
        config.output_max_bytes = output_max_bytes
        config.dead_letter_max_bytes = dead_letter_max_bytes
        #: Body + header bytes under which no event can reach the output limit.
        self._small_record = max(0, (output_max_bytes - _FIXED_EVENT_BYTES) // _AMPLIFICATION)

    def process(self, records: Sequence[InputRecord]) -> BatchResult:
        """Decode, dedupe and encode one batch; every record yields events or a dead letter."""
        stats = self.stats
        decode = self.decoder.decode
        events: list[ReceiptEvent] = []
        stamps: list[int] = []
        dead: list[DeadLetter] = []
        # Records whose events might not fit the output topic's limit (see `_fit`).
        large: dict[tuple[str, int, int], InputRecord] = {}
        small = self._small_record
        for record in records:
            try:
                decoded = decode(record)
            except PartialBody as partial:
                self._dead(dead, record, partial)
                decoded = partial.events
            except DecodeError as exc:
                self._dead(dead, record, exc)
                continue
            except NotReceipts as skip:
                stats.skipped[skip.kind if skip.kind in SKIP_KINDS else "other"] += 1
                continue
            if len(record.value) > small or (record.headers and _large_headers(record, small)):
                large[record.topic, record.partition, record.offset] = record
            if decoded:
                events += decoded
                stamps += repeat(record.timestamp_ms, len(decoded))
                stats.receipts_in[decoded[0].provider] += len(decoded)
        if not events:
            return BatchResult([], dead)

        window = self.window
        now_ms = 0
        if window is not None:
            now_ms = window.guarded_now(
                [r.timestamp_ms for r in records],
                self.wall_ms(),
                self.decoder.config.clock_skew_tolerance_ms,
            )
        keys, codes, verdicts = window_verdicts(window, events, now_ms)
        outputs = emitted_outputs(events, keys, codes, verdicts, stamps, stats.events_out)
        if large:
            outputs = self._fit(outputs, events, verdicts, large, dead)
        return BatchResult(outputs, dead)

    def _dead(self, dead: list[DeadLetter], record: InputRecord, exc: DecodeError) -> None:
        dead.append(dead_letter(record, exc, self.decoder.config.dead_letter_max_bytes))
        self.stats.dead_letters[exc.error_class] += 1

    def _fit(
        self,
        outputs: list[OutputRecord],
        events: list[ReceiptEvent],
        verdicts: Sequence[int],
        large: dict[tuple[str, int, int], InputRecord],
        dead: list[DeadLetter],
    ) -> list[OutputRecord]:
        """The outputs that fit the output topic's record limit; the events of a record that do
        not become one `EventTooLarge` dead letter of that record (its good events still go).

        Only outputs of `large` records are sized: no other record's event can come near the limit.
        """
        limit = self.decoder.config.output_max_bytes
        emitted = [e for e, v in zip(events, verdicts, strict=True) if v == EMIT]
        kept: list[OutputRecord] = []
        refused: dict[tuple[str, int, int], list[int]] = {}
        for event, out in zip(emitted, outputs, strict=True):
            src = event.source
            where = (src.topic, src.partition, src.offset)
            if where in large and record_size(out.key, out.value, out.headers) > limit:
                refused.setdefault(where, []).append(src.index)
                self.stats.events_out[event.provider, event.status] -= 1
            else:
                kept.append(out)
        for where, reports in refused.items():
            self._dead(
                dead,
                large[where],
                EventTooLarge(
                    f"{len(reports)} events exceed the output topic's record limit of {limit} "
                    "bytes",
                    tuple(reports),
                ),
            )
        return kept if refused else outputs


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


class Verdicts(NamedTuple):
    """The dedupe stage's result on a batch of events, one item per event."""

    keys: list[bytes]  # the output record keys, `<provider>:<message_key>`
    codes: bytes  # provider code above the status code, one byte (see _STATUS_BITS)
    verdicts: bytearray  # EMIT, DUPLICATE or STALE


def window_verdicts(window: Window | None, events: Sequence[ReceiptEvent], now_ms: int) -> Verdicts:
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


def dead_letter(
    record: InputRecord, exc: DecodeError, max_bytes: int = DEFAULT_RECORD_MAX_BYTES
) -> DeadLetter:
    """The original bytes and headers, plus why and where from (DESIGN.md section 2), keyed
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


def parse_routes(mapping: Mapping[str, str]) -> dict[str, Route]:
    """`{"topic": "provider[.endpoint]"}` as routes; unknown providers are a config error."""
    routes = {}
    for topic, target in mapping.items():
        provider, _, endpoint = target.partition(".")
        if provider not in REGISTRY:
            raise ValueError(
                f"topic mapping {topic!r}: unknown provider {provider!r} "
                f"(known: {', '.join(REGISTRY)})"
            )
        routes[topic] = Route(provider, endpoint or None)
    return routes
