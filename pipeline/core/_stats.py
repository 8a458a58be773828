"""The core's counters."""

from __future__ import annotations

from collections import Counter

from .normalise import UNMAPPED_STATUSES, UNPARSED_TIMES


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
