"""The garbage collector's schedule for a process that allocates per receipt.

CPython walks its youngest generation every 700 net container allocations. The hot path makes
a few per receipt (lists, the tuples of records and headers, the Kafka client's records) and
reference counting frees them all, since none of its structs is tracked and nothing forms a
cycle: at the default the collector walks young objects every ~150 receipts for nothing.
Every 50 000 allocations cuts the core's instructions by ~3% (`benchmarks/instructions.py`'s
core stage, thresholds varied) and bounds what can wait for a collection to a few MB.
"""

from __future__ import annotations

import gc
from typing import Final

#: Net container allocations between two collections of the youngest generation.
GEN0_THRESHOLD: Final = 50_000


def tune_collector() -> None:
    """Freeze what start-up made (it lives for the run: no collection walks it again) and
    collect the youngest generation every `GEN0_THRESHOLD` allocations."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
