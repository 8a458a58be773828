"""A bad report costs itself only: the events of the good ones, and one dead letter naming the
bad ones with their reasons (`PartialBody`), or `MalformedBody` when no report is good."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from schemas import ReceiptEvent

from ...errors import MalformedBody, PartialBody

T = TypeVar("T")
#: Reasons listed in a dead letter's message; the positions (`error.reports`) are all there.
_MAX_REASONS: Final = 20


def reasons(failed: Sequence[tuple[int, str]], total: int) -> str:
    """`2 of 5 reports invalid: [1] sid is empty; [3] ...`: the bad reports and why."""
    listed = "; ".join(f"[{index}] {reason}" for index, reason in failed[:_MAX_REASONS])
    more = f"; and {len(failed) - _MAX_REASONS} more" if len(failed) > _MAX_REASONS else ""
    return f"{len(failed)} of {total} reports invalid: {listed}{more}"


def settle(
    events: list[ReceiptEvent], failed: Sequence[tuple[int, str]], total: int
) -> list[ReceiptEvent]:
    """`events` when no report failed; else PartialBody with them, or MalformedBody if none."""
    if not failed:
        return events
    if not events:
        raise MalformedBody(reasons(failed, total))
    raise PartialBody(reasons(failed, total), events, tuple(index for index, _ in failed))


def each_report(rows: Sequence[T], build: Callable[[int, T], ReceiptEvent]) -> list[ReceiptEvent]:
    """`build(index, row)` for every row; a row that raises MalformedBody costs itself only."""
    events: list[ReceiptEvent] = []
    failed: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        try:
            events.append(build(index, row))
        except MalformedBody as exc:
            failed.append((index, str(exc)))
    return settle(events, failed, len(rows))
