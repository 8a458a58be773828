"""The I/O-free core: raw records in, canonical output records and dead letters out.

decode → normalise → dedupe → encode, one call per batch of records. The Kafka loop and the
embedded file mode are thin shells around `Core.process`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Final, NamedTuple

import msgspec

from schemas import PROVIDER_INDEX, STATUS_INDEX, ReceiptEvent

from ..normalise._context import RecordContext
from ..normalise._errors import (
    DEFAULT_DEAD_LETTER_MAX_BYTES,
    DEFAULT_MAX_BODY_BYTES,
    BodyTooLarge,
    DecodeError,
    NotReceipts,
    UnknownFormat,
)
from ..normalise._fields import UNMAPPED_STATUSES
from ..normalise._timefmt import zone
from ..providers import REGISTRY, ProviderModule
from ._window import EMIT, Window

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
    """An input record that produced no events, with the reason in its headers."""

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
    dead_letter_max_bytes: int = DEFAULT_DEAD_LETTER_MAX_BYTES
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
        self.dead_letters: Counter[str] = Counter()  # by error class
        self.skipped: Counter[str] = Counter()  # by kind, e.g. "ultiroam.ussd"
        self._unmapped_before = Counter(UNMAPPED_STATUSES)

    @property
    def unmapped_statuses(self) -> Counter[str]:
        """Unmapped statuses seen since these stats were created.

        Decoders count into one process-wide counter (map_status has no stats at hand); one
        process runs one core, and this view subtracts what came before it.
        """
        return UNMAPPED_STATUSES - self._unmapped_before


_ENCODER = msgspec.json.Encoder()
# Header values repeat endlessly: each distinct header is built once and shared.
_PROVIDER_HEADER: Final = {p: ("provider", p.encode()) for p in PROVIDER_INDEX}
_STATUS_HEADER: Final = {s: ("status", s.encode()) for s in STATUS_INDEX}


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
        ctx = RecordContext(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
            account=account,
            tz=tz,
        )
        return module.decode(record.value, endpoint, ctx)


class Core:
    """decode → normalise → dedupe → encode; stateful only through its window and counters."""

    def __init__(
        self,
        window: Window,
        config: CoreConfig | None = None,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """``wall_ms``: the wall clock in ms (injected by tests), read once per batch."""
        self.window = window
        self.decoder = Decoder(config)
        self.stats = self.decoder.stats
        self.wall_ms = wall_ms

    def process(self, records: Sequence[InputRecord]) -> BatchResult:
        """Decode, dedupe and encode one batch; every record yields events or a dead letter."""
        stats = self.stats
        decode = self.decoder.decode
        events: list[ReceiptEvent] = []
        stamps: list[int] = []
        dead: list[DeadLetter] = []
        now_ms = self.window.guarded_now(
            [r.timestamp_ms for r in records],
            self.wall_ms(),
            self.decoder.config.clock_skew_tolerance_ms,
        )
        for record in records:
            try:
                decoded = decode(record)
            except DecodeError as exc:
                dead.append(dead_letter(record, exc, self.decoder.config.dead_letter_max_bytes))
                stats.dead_letters[exc.error_class] += 1
                continue
            except NotReceipts as skip:
                stats.skipped[skip.kind] += 1
                continue
            if decoded:
                events += decoded
                stamps += repeat(record.timestamp_ms, len(decoded))
                stats.receipts_in[decoded[0].provider] += len(decoded)
        if not events:
            return BatchResult([], dead)

        keys, verdicts = window_verdicts(self.window, events, now_ms)
        outputs = emitted_outputs(events, keys, verdicts, stamps, stats.events_out)
        return BatchResult(outputs, dead)


def window_verdicts(
    window: Window, events: Sequence[ReceiptEvent], now_ms: int
) -> tuple[list[bytes], bytearray]:
    """The events' keys and the window's verdict on each (the dedupe stage)."""
    keys = [f"{e.provider}:{e.message_key}".encode() for e in events]
    verdicts = window.check_batch(
        window.hashes(keys),
        [STATUS_INDEX[e.status] for e in events],
        [PROVIDER_INDEX[e.provider] for e in events],
        now_ms,
    )
    return keys, verdicts


def emitted_outputs(
    events: Sequence[ReceiptEvent],
    keys: Sequence[bytes],
    verdicts: Sequence[int],
    stamps: Sequence[int],
    events_out: Counter[tuple[str, str]],
) -> list[OutputRecord]:
    """The output records of the events the window emits (the encode stage), counted."""
    encode = _ENCODER.encode
    provider_header, status_header = _PROVIDER_HEADER, _STATUS_HEADER
    outputs = [
        OutputRecord(
            key,
            encode(event),
            # A list: aiokafka's batch builder takes nothing else.
            [
                ("event_id", event.event_id.encode()),
                provider_header[event.provider],
                status_header[event.status],
            ],
            stamp,
        )
        for event, key, verdict, stamp in zip(events, keys, verdicts, stamps, strict=True)
        if verdict == EMIT
    ]
    # Counted once per batch, in C (Counter.update over an iterator), not per event.
    events_out.update(
        (e.provider, e.status) for e, v in zip(events, verdicts, strict=True) if v == EMIT
    )
    return outputs


def dead_letter(
    record: InputRecord, exc: DecodeError, max_bytes: int = DEFAULT_DEAD_LETTER_MAX_BYTES
) -> DeadLetter:
    """The original bytes and headers, plus why and where from (DESIGN.md section 2).

    A value over `max_bytes` is cut to that size, and `error.original_size` says so.
    """
    value = record.value
    headers = [*record.headers]
    if len(value) > max_bytes:
        headers.append(("error.original_size", str(len(value)).encode()))
        value = value[:max_bytes]
    headers += [
        ("error.class", exc.error_class.encode()),
        ("error.message", str(exc)[:1000].encode("utf-8", "replace")),
        ("source.topic", record.topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
    ]
    return DeadLetter(value, headers, record.timestamp_ms, exc.error_class)


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
