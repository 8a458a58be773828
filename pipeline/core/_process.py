"""The I/O-free core: raw records in, canonical output records and dead letters out.

decode → normalise → dedupe → encode, one call per batch of records. The Kafka runtime and the
embedded file mode are thin shells around `Core.process`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Generic, TypeVar

from schemas import ReceiptEvent

from ..errors import DecodeError, EventTooLarge, NotReceipts, PartialBody
from ._config import CoreConfig
from ._lifecycle import Lifecycle
from ._records import (
    _AMPLIFICATION,
    _FIXED_EVENT_BYTES,
    BatchResult,
    DeadLetter,
    InputRecord,
    OutputRecord,
    _large_headers,
    dead_letter,
    record_size,
)
from ._routing import Decoder
from ._verdicts import EMIT, DedupeWindow, emitted_outputs, window_verdicts
from .providers import SKIP_KINDS

#: The window type a core dedupes with (the state layer's `Window`, or a test's).
W = TypeVar("W", bound=DedupeWindow)


class Core(Generic[W]):
    """decode → normalise → dedupe → encode; stateful only through its window and counters."""

    def __init__(
        self,
        window: W | None,
        config: CoreConfig | None = None,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        """``window`` None: no dedupe, every event is emitted (the route stage of topology
        ``partitioned``, whose windows live in the dedupe stage). ``wall_ms``: the wall clock in
        ms (injected by tests), read once per batch. ``lifecycle`` (over the same window): each
        batch's result also holds the state records of the messages it changed."""
        self.window = window
        self.lifecycle = lifecycle
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
        if self.lifecycle is not None:
            states = self.lifecycle.states(events, keys, verdicts, stamps)
            return BatchResult(outputs, dead, states + self.lifecycle.expire())
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
