"""Normalisation rules shared by every provider: record context, statuses, numbers, times.

The core's bottom layer: providers build canonical events from these; nothing here imports
upwards, and nothing here does I/O.
"""

from ._context import RecordContext
from ._fields import (
    UNMAPPED_STATUSES,
    e164,
    make_event,
    map_status,
    national_cn,
    national_fr,
    national_with_cc,
)
from ._timefmt import (
    epoch_text_to_utc,
    format_epoch_ms,
    format_epoch_s,
    local_to_utc,
    provider_time,
    zone,
)

__all__ = [
    "UNMAPPED_STATUSES",
    "RecordContext",
    "e164",
    "epoch_text_to_utc",
    "format_epoch_ms",
    "format_epoch_s",
    "local_to_utc",
    "make_event",
    "map_status",
    "national_cn",
    "national_fr",
    "national_with_cc",
    "provider_time",
    "zone",
]
