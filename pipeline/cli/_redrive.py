"""`python -m pipeline redrive`: what a dead letter's copy is, which dead letters are selected,
and the command line. Pure functions only; the Kafka side is in `_redrive_kafka.py`.

A dead letter (`pipeline/core/_records.py` `dead_letter`, `pipeline/kafka/_sink.py`) is the
original value and headers plus headers the processor adds: `error.class`, `error.message`,
`error.reports` (some reports failed), `error.original_size` (the value was cut to fit),
`error.headers_dropped` (original headers were dropped to fit) and `source.topic`,
`source.partition`, `source.offset`. Its key is the source's `topic:partition:offset`, its
timestamp the original record's (restamped "now" only when the dead-letter topic would refuse
it). A copy is the value, the original headers (those added stripped), a `redriven.from`
header naming the dead letter, and the dead letter's timestamp.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from typing import Final, NamedTuple

import msgspec

from ..config import KafkaSettings, Settings, add_arguments
from ..core import DEAD_LETTER_HEADERS, Headers
from ..errors import DEAD_LETTER_CLASSES, ConfigError

#: The header a copy carries: `topic:partition:offset` of the dead letter it was copied from.
REDRIVEN_FROM: Final = "redriven.from"
#: Stripped from a copy: the added headers, and the `redriven.from` of an earlier redrive (a copy
#: dead-lettered again and redriven again names only its latest dead letter).
STRIPPED: Final = DEAD_LETTER_HEADERS | {REDRIVEN_FROM}
#: Why a selected dead letter is not copied (its value is not the original body).
TRUNCATED: Final = "truncated"  # `error.original_size`: the value was cut to fit the topic
EVENT: Final = "event"  # a canonical event the output topic refused, not a raw body
NOT_OURS: Final = "not-a-dead-letter"  # no `source.*` headers: not written by the processor


class Source(NamedTuple):
    """Where the original record was: the dead letter's `source.*` headers."""

    topic: str
    partition: int
    offset: int


class DeadLetterView(NamedTuple):
    """What redrive needs of a dead letter's headers."""

    error_class: str  # "" when the header is missing
    source: Source | None
    original: list[tuple[str, bytes]]  # the original record's headers
    problem: str | None  # TRUNCATED, EVENT, NOT_OURS, or None: the value is the original body


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


def view(headers: Headers) -> DeadLetterView:
    """Split a dead letter's headers into the reason, the source and the original headers."""
    added: dict[str, bytes] = {}
    original: list[tuple[str, bytes]] = []
    for key, value in headers:
        if key in STRIPPED:
            added.setdefault(key, value)  # the first of a repeated name, as the core routes
        else:
            original.append((key, value))
    source = None
    with contextlib.suppress(KeyError, ValueError):
        source = Source(
            _text(added["source.topic"]),
            int(_text(added["source.partition"])),
            int(_text(added["source.offset"])),
        )
    problem = None
    if source is None or "error.class" not in added:
        problem = NOT_OURS
    elif "error.original_size" in added:
        problem = TRUNCATED
    elif any(key == "event_id" for key, _ in original):
        # The sink dead-letters an event the output topic refused with the event's own headers
        # (event_id, provider, status); raw records never carry event_id.
        problem = EVENT
    return DeadLetterView(_text(added.get("error.class")), source, original, problem)


def redriven_headers(
    original: Headers, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """A copy's headers: the original ones, then `redriven.from` = the dead letter's place."""
    return [*original, (REDRIVEN_FROM, f"{topic}:{partition}:{offset}".encode())]


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Which dead letters a redrive copies; every bound is optional.

    `since_ms` inclusive and `until_ms` exclusive, on the dead letter's record time;
    `from_offset` and `to_offset` inclusive, on `partition` of the dead-letter topic.
    """

    error_classes: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def takes_partition(self, partition: int) -> bool:
        return self.partition is None or partition == self.partition

    def offset_range(self, partition: int, begin: int, end: int) -> tuple[int, int]:
        """The offsets [start, stop) of `partition` to read, within its [begin, end)."""
        if not self.takes_partition(partition):
            return begin, begin
        start = max(begin, self.from_offset or 0)
        stop = end if self.to_offset is None else min(end, self.to_offset + 1)
        return start, max(start, stop)

    def matches(self, partition: int, offset: int, timestamp_ms: int, error_class: str) -> bool:
        if not self.takes_partition(partition):
            return False
        if self.from_offset is not None and offset < self.from_offset:
            return False
        if self.to_offset is not None and offset > self.to_offset:
            return False
        if self.since_ms is not None and timestamp_ms < self.since_ms:
            return False
        if self.until_ms is not None and timestamp_ms >= self.until_ms:
            return False
        return not self.error_classes or error_class in self.error_classes


class Copy(NamedTuple):
    """One record to write to the target topic."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int
    source: Source
    error_class: str


def copy_of(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    headers: Headers,
    value: bytes,
) -> Copy | DeadLetterView:
    """The copy of one dead letter, or its view when it cannot be copied (`problem` says why).

    The key is None: the dead letter's key is its source's `topic:partition:offset`, not the
    original key (raw records are keyless: the ingress writes them so). The timestamp is the
    dead letter's, which is the original record's (no header carries another).
    """
    seen = view(headers)
    if seen.problem is not None or seen.source is None:
        return seen
    return Copy(
        None,
        value,
        redriven_headers(seen.original, topic, partition, offset),
        timestamp_ms,
        seen.source,
        seen.error_class,
    )


def target_partition(copy: Copy, target: str, partitions: int, spread: int) -> int:
    """The original partition when the copy goes back to its source topic and that partition
    exists; `spread` (a hash of the source) otherwise."""
    src = copy.source
    if src.topic == target and 0 <= src.partition < partitions:
        return src.partition
    return spread % partitions


# ------------------------------------------------------------------------------ the summary


class Tally:
    """What a redrive counted, in all and per error class."""

    def __init__(self) -> None:
        self.read: Counter[str] = Counter()
        self.selected: Counter[str] = Counter()
        self.redriven: Counter[str] = Counter()  # acknowledged by the broker
        self.skipped: Counter[str] = Counter()  # by reason (TRUNCATED, EVENT, NOT_OURS, ...)

    def line(self, source: str, target: str, seconds: float, note: str = "") -> str:
        classes = sorted(set(self.read) | set(self.selected))
        per_class = ", ".join(
            f"{c or '?'} {self.read[c]}/{self.selected[c]}/{self.redriven[c]}" for c in classes
        )
        skipped = sum(self.skipped.values())
        text = (
            f"redrive: read {sum(self.read.values())} dead letters from {source!r}, "
            f"selected {sum(self.selected.values())}, "
            f"redriven {sum(self.redriven.values())} to {target!r}"
        )
        if skipped:
            reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.skipped.items()))
            text += f", not redrivable {skipped} ({reasons})"
        if per_class:
            text += f"; per class (read/selected/redriven): {per_class}"
        return f"{text}; {seconds:.2f}s{note}"


# ----------------------------------------------------------------------------- command line


#: The settings of `run` that `redrive` takes as flags; they load as `run`'s `Settings`, so one
#: TOML file or environment serves both commands.
REDRIVE_SETTINGS: Final = (
    *KafkaSettings.__struct_fields__,
    "input_topics",
    "dead_letter_topic",
    "isolation_level",
    "shutdown_timeout_s",
)
_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def parse_time(text: str) -> int:
    """Epoch milliseconds from epoch ms digits or ISO-8601 (a time without an offset is UTC)."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO-8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _classes(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if not _NAME.match(name):
            raise argparse.ArgumentTypeError(f"{name!r} is not an error class name")
    if not names:
        raise argparse.ArgumentTypeError("empty")
    return names


def add_redrive_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, Settings, only=REDRIVE_SETTINGS)
    pick = parser.add_argument_group("selection (all given must match)")
    pick.add_argument(
        "--error-class",
        dest="error_classes",
        action="append",
        type=_classes,
        metavar="CLASS",
        help="only dead letters of this error.class (repeatable, comma-separated; default: all)",
    )
    pick.add_argument(
        "--since",
        type=parse_time,
        metavar="TIME",
        help="only dead letters stamped at or after TIME (ISO-8601, UTC if no offset; or epoch ms)",
    )
    pick.add_argument(
        "--until", type=parse_time, metavar="TIME", help="only dead letters stamped before TIME"
    )
    pick.add_argument(
        "--partition", type=_non_negative, help="only this partition of the dead-letter topic"
    )
    pick.add_argument(
        "--from-offset", type=_non_negative, metavar="N", help="with --partition: first offset"
    )
    pick.add_argument(
        "--to-offset",
        type=_non_negative,
        metavar="N",
        help="with --partition: last offset (inclusive)",
    )
    parser.add_argument(
        "--to-topic",
        metavar="TOPIC",
        help="where copies go (default: the first of --input-topics)",
    )
    parser.add_argument(
        "--progress-interval-s",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="progress on stderr this often (default: 5)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read and select, report what would be copied, write nothing",
    )


def selection_from_args(args: argparse.Namespace) -> Selection:
    """The selection the flags ask for; ConfigError (exit 2) naming the flag when they clash."""
    partition = getattr(args, "partition", None)
    first, last = getattr(args, "from_offset", None), getattr(args, "to_offset", None)
    if partition is None:
        for flag, value in (("--from-offset", first), ("--to-offset", last)):
            if value is not None:
                raise ConfigError(f"{flag} needs --partition (offsets are per partition)")
    if first is not None and last is not None and last < first:
        raise ConfigError(f"--to-offset {last} is before --from-offset {first}")
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and until is not None and until <= since:
        raise ConfigError("--until must be after --since")
    classes = frozenset(n for group in getattr(args, "error_classes", None) or () for n in group)
    return Selection(
        error_classes=classes,
        since_ms=since,
        until_ms=until,
        partition=partition,
        from_offset=first,
        to_offset=last,
    )


def unknown_classes(selection: Selection) -> list[str]:
    return sorted(selection.error_classes - DEAD_LETTER_CLASSES)


# ------------------------------------------------------------------------------ embedded mode


def embedded_original(
    headers: Iterable[tuple[str, bytes]],
) -> tuple[Source, list[tuple[str, bytes]]] | DeadLetterView | None:
    """For a line of `run --from`: None when the headers are not a dead letter's (an ordinary
    record); else the original record's place and headers (its added headers stripped), or the
    view of a dead letter that cannot be processed again (`problem` says why)."""
    headers = list(headers)
    if not any(key == "error.class" for key, _ in headers):
        return None
    seen = view(headers)
    if seen.problem is not None or seen.source is None:
        return seen
    return seen.source, seen.original
