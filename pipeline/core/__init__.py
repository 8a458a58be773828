"""The I/O-free core: routing, decode → normalise → dedupe verdicts → encode, and dead letters.

Stateless but for its counters: dedupe state lives in a window the caller passes in (any
`DedupeWindow`, e.g. `pipeline.state.Window`).
"""

from ._config import DEFAULT_MAX_BODY_BYTES, CoreConfig, ProviderRoute
from ._lifecycle import (
    LATENCY_BUCKETS,
    EventFacts,
    Lifecycle,
    LifecycleCounters,
    LifecycleWindow,
    Unpacked,
    epoch_s,
    pack,
    unpack,
)
from ._process import Core
from ._records import (
    DEAD_LETTER_HEADERS,
    DEFAULT_RECORD_MAX_BYTES,
    HEADER_OVERHEAD,
    RECORD_OVERHEAD,
    BatchResult,
    DeadLetter,
    Headers,
    InputRecord,
    OutputRecord,
    dead_letter,
    record_size,
)
from ._routing import Decoder, parse_routes, sniff
from ._stats import CoreStats
from ._timeouts import Timeouts
from ._verdicts import (
    DUPLICATE,
    EMIT,
    STALE,
    DedupeWindow,
    Verdicts,
    emitted_outputs,
    window_verdicts,
)

__all__ = [
    "DEAD_LETTER_HEADERS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_RECORD_MAX_BYTES",
    "DUPLICATE",
    "EMIT",
    "HEADER_OVERHEAD",
    "LATENCY_BUCKETS",
    "RECORD_OVERHEAD",
    "STALE",
    "BatchResult",
    "Core",
    "CoreConfig",
    "CoreStats",
    "DeadLetter",
    "Decoder",
    "DedupeWindow",
    "EventFacts",
    "Headers",
    "InputRecord",
    "Lifecycle",
    "LifecycleCounters",
    "LifecycleWindow",
    "OutputRecord",
    "ProviderRoute",
    "Timeouts",
    "Unpacked",
    "Verdicts",
    "dead_letter",
    "emitted_outputs",
    "epoch_s",
    "pack",
    "parse_routes",
    "record_size",
    "sniff",
    "unpack",
    "window_verdicts",
]
