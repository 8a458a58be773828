"""Status and code look-ups that ignore case and surrounding whitespace (docs/contract.md).

A `Lookup` is a dict of the provider's values verbatim: an exact hit is one C-level dict look-up;
only a miss (`__missing__`) trims and case-folds the value and looks again. `provider_status`
and `provider_code` stay verbatim: only the look-up folds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Final, Generic, TypeVar

from schemas import Status

V = TypeVar("V")

#: Reports whose provider status matched no mapping row, by provider (they become UNKNOWN).
UNMAPPED_STATUSES: Final[Counter[str]] = Counter()


def fold(text: str) -> str:
    return text.strip().casefold()


class Lookup(dict[str, V | None], Generic[V]):
    """`table[value]`: the row of `value`, else of `value` trimmed and case-folded, else None."""

    __slots__ = ("_folded",)

    def __init__(self, rows: Mapping[str, V]) -> None:
        super().__init__(rows)
        self._folded: dict[str, V] = {fold(key): row for key, row in rows.items()}

    def __missing__(self, key: str) -> V | None:
        return self._folded.get(fold(key))

    def settled(self, *refined: V) -> dict[str, V]:
        """The exact rows as a plain dict, less those mapping to one of `refined` (a code
        refines them): a provider's hot path takes a hit here as final, and leaves a miss to
        `map_status` (case folding, refinement, counting), which this saves a call per report."""
        return {key: row for key, row in self.items() if row is not None and row not in refined}


def map_status(
    provider: str,
    table: Lookup[Status],
    raw: str,
    by_code: Lookup[Status] | None = None,
    code: str | None = None,
) -> Status:
    """The canonical status for `raw`; an unmapped value is UNKNOWN and counted. With `by_code`,
    an UNDELIVERED status is refined by its `code` when the code has a row (a FAIL's `EXPIRED`,
    `REJECTD`...), in this call: it runs once per report."""
    status = table[raw]
    if status is None:
        UNMAPPED_STATUSES[provider] += 1
        return "UNKNOWN"
    if status == "UNDELIVERED" and code is not None and by_code is not None:
        return by_code[code] or status
    return status
