"""`python -m pipeline redrive`: selection and header rewriting (pure), and the command line's
answers that need no broker (bad flags exit 2 naming the flag, no broker exits 1)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli._redrive import (
    EVENT,
    NOT_OURS,
    REDRIVEN_FROM,
    TRUNCATED,
    Copy,
    DeadLetterView,
    Selection,
    Source,
    Tally,
    add_redrive_arguments,
    copy_of,
    embedded_original,
    parse_time,
    selection_from_args,
    target_partition,
    view,
)
from pipeline.core import InputRecord, dead_letter
from pipeline.errors import BodyTooLarge, ConfigError, PartialBody, UnknownFormat

ROOT = Path(__file__).resolve().parents[3]

ORIGINAL = [("provider", b"yunpian"), ("endpoint", b"push"), ("content-type", b"text/plain")]
RECORD = InputRecord("raw", 3, 41, 1_700_000_000_123, ORIGINAL, b"sms_status=%5B%5D")


def test_every_header_the_core_adds_is_stripped_and_redriven_from_added() -> None:
    partial = PartialBody("2 bad reports", [], (1, 2))
    dead = dead_letter(RECORD, partial)
    copy = copy_of("dlq", 1, 7, dead.timestamp_ms, dead.headers, dead.value)
    assert isinstance(copy, Copy)
    assert copy.headers == [*ORIGINAL, (REDRIVEN_FROM, b"dlq:1:7")]
    assert copy.value == RECORD.value
    assert copy.timestamp_ms == RECORD.timestamp_ms
    assert copy.key is None  # the dead letter's key is its source, not the original key
    assert copy.source == Source("raw", 3, 41)
    assert copy.error_class == "PartialBody"


def test_headers_dropped_to_fit_still_redrives_what_is_left() -> None:
    big = [*ORIGINAL, ("x-big", b"x" * 5000)]
    dead = dead_letter(RECORD._replace(headers=big), UnknownFormat("?"), max_bytes=4000)
    assert ("error.headers_dropped", b"1") in dead.headers
    copy = copy_of("dlq", 0, 0, dead.timestamp_ms, dead.headers, dead.value)
    assert isinstance(copy, Copy)
    assert copy.headers == [*ORIGINAL, (REDRIVEN_FROM, b"dlq:0:0")]


def test_a_cut_value_is_not_redriven() -> None:
    dead = dead_letter(RECORD._replace(value=b"x" * 9000), BodyTooLarge("big"), max_bytes=4000)
    made = copy_of("dlq", 0, 0, dead.timestamp_ms, dead.headers, dead.value)
    assert isinstance(made, DeadLetterView) and made.problem == TRUNCATED
    assert made.error_class == "BodyTooLarge"


def test_a_refused_event_is_not_redriven() -> None:
    # The sink's dead letter of an event the output topic refused: the event's own headers.
    headers = [
        ("event_id", b"e1"),
        ("provider", b"tencent"),
        ("status", b"DELIVERED"),
        ("error.class", b"InvalidTimestamp"),
        ("error.message", b"stamped out of the window of topic 'out'"),
        ("source.topic", b"raw"),
        ("source.partition", b"0"),
        ("source.offset", b"5"),
    ]
    assert view(headers).problem == EVENT


def test_a_record_without_source_headers_is_not_ours() -> None:
    assert view([("error.class", b"X")]).problem == NOT_OURS
    bad_partition = [("source.topic", b"t"), ("source.partition", b"a"), ("source.offset", b"1")]
    assert view([("error.class", b"X"), *bad_partition]).problem == NOT_OURS


def test_a_copy_dead_lettered_again_names_only_its_latest_dead_letter() -> None:
    first = dead_letter(RECORD, UnknownFormat("?"))
    copy = copy_of("dlq", 0, 3, first.timestamp_ms, first.headers, first.value)
    assert isinstance(copy, Copy)
    again = dead_letter(
        InputRecord("raw", 1, 99, copy.timestamp_ms, copy.headers, copy.value), UnknownFormat("?")
    )
    second = copy_of("dlq", 1, 8, again.timestamp_ms, again.headers, again.value)
    assert isinstance(second, Copy)
    assert second.headers == [*ORIGINAL, (REDRIVEN_FROM, b"dlq:1:8")]
    assert second.source == Source("raw", 1, 99)


def test_target_partition_keeps_the_source_partition_of_the_source_topic() -> None:
    copy = copy_of("dlq", 0, 0, 0, dead_letter(RECORD, UnknownFormat("?")).headers, b"v")
    assert isinstance(copy, Copy)
    assert target_partition(copy, "raw", 4, spread=10) == 3
    assert target_partition(copy, "raw", 2, spread=10) == 0  # fewer partitions now: spread
    assert target_partition(copy, "other", 4, spread=10) == 2


def test_selection_bounds() -> None:
    everything = Selection()
    assert everything.matches(5, 10**9, 0, "Anything")
    sel = Selection(
        error_classes=frozenset({"UnknownFormat", "MalformedBody"}),
        since_ms=1000,
        until_ms=2000,
        partition=1,
        from_offset=10,
        to_offset=20,
    )
    assert sel.matches(1, 10, 1000, "UnknownFormat")
    assert sel.matches(1, 20, 1999, "MalformedBody")
    assert not sel.matches(0, 15, 1500, "UnknownFormat")  # partition
    assert not sel.matches(1, 9, 1500, "UnknownFormat")  # before --from-offset
    assert not sel.matches(1, 21, 1500, "UnknownFormat")  # after --to-offset (inclusive)
    assert not sel.matches(1, 15, 999, "UnknownFormat")  # before --since
    assert not sel.matches(1, 15, 2000, "UnknownFormat")  # --until is exclusive
    assert not sel.matches(1, 15, 1500, "ProviderError")  # class
    assert sel.offset_range(1, 0, 100) == (10, 21)
    assert sel.offset_range(1, 15, 18) == (15, 18)
    assert sel.offset_range(1, 30, 40) == (30, 30)  # nothing left in range
    assert sel.offset_range(0, 0, 100) == (0, 0)  # another partition
    assert everything.offset_range(2, 5, 9) == (5, 9)


def test_parse_time() -> None:
    assert parse_time("1717484400000") == 1717484400000
    assert parse_time("2024-06-04T07:00:00Z") == 1717484400000
    assert parse_time("2024-06-04T09:00:00+02:00") == 1717484400000
    assert parse_time("2024-06-04T07:00:00") == 1717484400000  # no offset: UTC
    assert parse_time("2024-06-04 07:00:00.250Z") == 1717484400250
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("yesterday")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_redrive_arguments(parser)
    return parser.parse_args(list(argv))


def test_selection_from_flags() -> None:
    sel = selection_from_args(
        _args(
            "--error-class",
            "UnknownFormat,MalformedBody",
            "--error-class",
            "ProviderError",
            "--since",
            "2024-06-04T07:00:00Z",
            "--until",
            "1717484500000",
            "--partition",
            "2",
            "--from-offset",
            "5",
            "--to-offset",
            "9",
        )
    )
    assert sel == Selection(
        error_classes=frozenset({"UnknownFormat", "MalformedBody", "ProviderError"}),
        since_ms=1717484400000,
        until_ms=1717484500000,
        partition=2,
        from_offset=5,
        to_offset=9,
    )
    assert selection_from_args(_args()) == Selection()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--from-offset", "3"], "--from-offset"),
        (["--to-offset", "3"], "--to-offset"),
        (["--partition", "0", "--from-offset", "5", "--to-offset", "4"], "--to-offset"),
        (["--since", "2000", "--until", "1000"], "--until"),
    ],
)
def test_clashing_flags_name_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        selection_from_args(_args(*argv))


def test_tally_line() -> None:
    tally = Tally()
    tally.read.update({"UnknownFormat": 3, "ProviderError": 2})
    tally.selected.update({"UnknownFormat": 3})
    tally.redriven.update({"UnknownFormat": 2})
    tally.skipped.update({TRUNCATED: 1})
    line = tally.line("dlq", "raw", 1.5)
    assert line == (
        "redrive: read 5 dead letters from 'dlq', selected 3, redriven 2 to 'raw', "
        "not redrivable 1 (truncated=1); per class (read/selected/redriven): "
        "ProviderError 2/0/0, UnknownFormat 3/3/2; 1.50s"
    )


def test_embedded_original() -> None:
    assert embedded_original(ORIGINAL) is None  # an ordinary record
    dead = dead_letter(RECORD, UnknownFormat("?"))
    assert embedded_original(dead.headers) == (Source("raw", 3, 41), ORIGINAL)
    cut = dead_letter(RECORD._replace(value=b"x" * 9000), BodyTooLarge("big"), max_bytes=4000)
    made = embedded_original(cut.headers)
    assert isinstance(made, DeadLetterView) and made.problem == TRUNCATED


# ------------------------------------------------------------------------ the command line


def redrive(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "redrive", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--since", "yesterday"], "--since"),
        (["--partition", "-1"], "--partition"),
        (["--from-offset", "x", "--partition", "0"], "--from-offset"),
        (["--from-offset", "3"], "--from-offset"),
        (["--error-class", "no such"], "--error-class"),
        (["--startup-timeout-s", "0"], "startup_timeout_s"),
        (["--to-topic", "sms-receipts-dlq"], "--to-topic"),
        (["--progress-interval-s", "0"], "--progress-interval-s"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv: list[str], flag: str) -> None:
    result = redrive(*argv)
    assert result.returncode == 2, result.stderr
    assert flag in result.stderr


def test_no_broker_exits_1_after_the_startup_timeout() -> None:
    started = time.monotonic()
    result = redrive("--bootstrap-servers", "127.0.0.1:1", "--startup-timeout-s", "2")
    assert result.returncode == 1, result.stderr
    assert "not reachable" in result.stderr.splitlines()[-1]
    assert 2 <= time.monotonic() - started < 20


def test_help_lists_the_selection_flags() -> None:
    result = redrive("--help")
    assert result.returncode == 0
    flags = "--error-class --since --until --partition --from-offset --to-offset --to-topic"
    for flag in (*flags.split(), "--dead-letter-topic", "--shutdown-timeout-s"):
        assert flag in result.stdout
