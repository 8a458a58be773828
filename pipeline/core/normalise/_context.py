"""What a decoder knows about the record a body came from."""

from __future__ import annotations

import msgspec

from ._timefmt import format_epoch_ms


class RecordContext(msgspec.Struct):
    """Per-record context, built once per input record (never per report); the core builds it
    positionally (keywords cost ~0.1 µs each here)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    account: str | None = None
    tz: str | None = None
    observed_at: str = ""

    def __post_init__(self) -> None:
        if not self.observed_at:
            self.observed_at = format_epoch_ms(self.timestamp_ms)
