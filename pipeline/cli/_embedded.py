"""The embedded run mode: the whole core on files, no Kafka (`run --from PATH --to PATH`).

Input is kcat's `-J` JSON-lines envelope (so a dumped topic replays offline) or a directory of
raw body files; a dead letter among the lines (the dead-letter file this mode writes, or a dump of
the dead-letter topic) is processed as its original record (`_redrive.embedded_original`).
Output is one canonical event per line, the same bytes the Kafka sink writes; with `--state-to`,
one state record per line beside it (the state topic's values).
"""

from __future__ import annotations

import base64
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

import msgspec

from ..core import Core, DeadLetter, InputRecord, dead_letter
from ..errors import ConfigError, MalformedBody
from ..state import Window
from ._redrive import DeadLetterView, embedded_original

BATCH_RECORDS: Final = 1000
PROGRESS_EVERY_S: Final = 5.0


class KcatEnvelope(msgspec.Struct):
    """kcat -J: headers is a flat [k, v, k, v, ...] list; ts in milliseconds."""

    payload: str | None = None
    topic: str = "-"
    partition: int = 0
    offset: int = -1
    ts: int = 0
    headers: list[str] | None = None
    key: str | None = None
    # Not kcat's: how our dead-letter file keeps bodies that are not UTF-8.
    payload_b64: str | None = None


_ENVELOPE = msgspec.json.Decoder(KcatEnvelope)
_ENCODER = msgspec.json.Encoder()


class MalformedEnvelope(MalformedBody):
    """An input line that is not a kcat JSON envelope."""


def _pairs(flat: list[str] | None) -> list[tuple[str, bytes]]:
    if not flat:
        return []
    if len(flat) % 2:
        raise ValueError("headers list has an odd number of items")
    return [(flat[i], flat[i + 1].encode()) for i in range(0, len(flat), 2)]


def _parse_line(line: bytes, number: int) -> InputRecord | DeadLetter:
    env = _ENVELOPE.decode(line)
    if env.payload_b64 is not None:
        value = base64.b64decode(env.payload_b64)
    else:
        value = (env.payload or "").encode()
    offset = env.offset if env.offset >= 0 else number
    headers = _pairs(env.headers)
    original = embedded_original(headers)
    if original is None:
        return InputRecord(env.topic, env.partition, offset, env.ts, headers, value)
    # A dead letter (our dead-letter file, or a dump of the dead-letter topic): processed as its
    # original record, from where that was, without the headers the dead-lettering added.
    if isinstance(original, DeadLetterView):
        # Its value is not the original body (cut to fit, or an event): kept as it is.
        key = (env.key or f"{env.topic}:{env.partition}:{offset}").encode()
        return DeadLetter(key, value, headers, env.ts, original.error_class)
    source, original_headers = original
    return InputRecord(*source, env.ts, original_headers, value)


def read_records(path: str) -> Iterator[InputRecord | DeadLetter]:
    """Records from a kcat JSON-lines file, `-` (stdin) or a directory of raw bodies.

    An unreadable envelope line is yielded as a dead letter, never dropped. The source is opened
    before the first record is asked for: a missing or unreadable one is a ConfigError at once.
    """
    try:
        if path != "-" and os.path.isdir(path):
            files = sorted(p for p in Path(path).iterdir() if p.is_file())
            return _read_files(files)
        stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"invalid setting source: {path}: {exc.strerror or exc}") from None
    return _read_lines(path, stream)


def _read_files(files: list[Path]) -> Iterator[InputRecord]:
    for number, file in enumerate(files):
        stamp = int(file.stat().st_mtime * 1000)
        yield InputRecord(str(file), 0, number, stamp, [], file.read_bytes())


def _read_lines(path: str, stream: IO[bytes]) -> Iterator[InputRecord | DeadLetter]:
    try:
        for number, line in enumerate(stream):
            if not line.strip():
                continue
            try:
                yield _parse_line(line, number)
            except (msgspec.DecodeError, ValueError) as exc:
                raw = InputRecord(path, 0, number, 0, [], line.rstrip(b"\n"))
                yield dead_letter(raw, MalformedEnvelope(f"line {number + 1}: {exc}"))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _dead_letter_line(dead: DeadLetter) -> bytes:
    flat: list[str] = []
    for key, value in dead.headers:
        flat += [key, value.decode("utf-8", "replace")]
    try:
        payload: dict[str, str] = {"payload": dead.value.decode()}
    except UnicodeDecodeError:
        payload = {"payload_b64": base64.b64encode(dead.value).decode()}
    return _ENCODER.encode({"ts": dead.timestamp_ms, "headers": flat, **payload}) + b"\n"


def _open_out(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdout.buffer
    return open(path, "wb")


def default_dead_letter_path(to: str) -> str:
    return "-stderr" if to == "-" else f"{to}.deadletter.jsonl"


def run_embedded(
    core: Core[Window],
    source: str,
    to: str,
    dead_letter_path: str | None,
    state_to: str | None = None,
) -> int:
    """Process `source` into `to` (and the state records into `state_to`, with a core that has
    a lifecycle); returns the exit code. Summary and progress on stderr."""
    dl_path = dead_letter_path or default_dead_letter_path(to)
    records = read_records(source)  # before any output exists: a bad source writes nothing
    out = _open_out(to)
    dl_out = sys.stderr.buffer if dl_path == "-stderr" else _open_out(dl_path)
    state_out = None if state_to is None else _open_out(state_to)
    records_in = dead_count = events_out = 0
    started = last_progress = time.monotonic()
    batch: list[InputRecord] = []

    def flush() -> None:
        nonlocal events_out, dead_count
        result = core.process(batch)
        out.writelines(o.value + b"\n" for o in result.outputs)
        dl_out.writelines(_dead_letter_line(d) for d in result.dead_letters)
        if state_out is not None:
            state_out.writelines(s.value + b"\n" for s in result.states)
        events_out += len(result.outputs)
        dead_count += len(result.dead_letters)
        batch.clear()

    try:
        for item in records:
            records_in += 1
            if isinstance(item, DeadLetter):
                dl_out.write(_dead_letter_line(item))
                core.stats.dead_letters[item.error_class] += 1
                dead_count += 1
                continue
            batch.append(item)
            if len(batch) >= BATCH_RECORDS:
                flush()
                now = time.monotonic()
                if now - last_progress >= PROGRESS_EVERY_S:
                    last_progress = now
                    print(
                        f"progress: {records_in} records, {events_out} events, "
                        f"{records_in / (now - started):,.0f} records/s",
                        file=sys.stderr,
                    )
        if batch:
            flush()
    finally:
        for stream in (out, dl_out, state_out):
            if stream is None:
                continue
            stream.flush()
            if stream is not sys.stdout.buffer and stream is not sys.stderr.buffer:
                stream.close()
    print(summary(core, records_in, time.monotonic() - started), file=sys.stderr)
    return 0


def summary(core: Core[Window], records_in: int, seconds: float) -> str:
    """The end-of-run report: totals, then one row per provider."""
    assert core.window is not None  # files mode always dedupes
    stats, counters = core.stats, core.window.counters.as_dict()
    providers = sorted(
        set(stats.records_in) | set(stats.receipts_in) | {p for p, _ in stats.events_out}
    )
    out_by_provider = {
        p: sum(n for (q, _), n in stats.events_out.items() if q == p) for p in providers
    }
    lines = [
        f"summary: {records_in} records in, {sum(stats.receipts_in.values())} receipts decoded, "
        f"{sum(out_by_provider.values())} events out, "
        f"{sum(counters['duplicates'].values())} duplicates, "
        f"{sum(counters['stale'].values())} stale, "
        f"{sum(stats.dead_letters.values())} dead-lettered, {sum(stats.skipped.values())} skipped "
        f"in {seconds:.2f}s",
        f"  {'provider':<12}{'records':>9}{'receipts':>10}{'out':>9}{'dup':>8}{'stale':>8}",
    ]
    for p in providers:
        lines.append(
            f"  {p:<12}{stats.records_in[p]:>9}{stats.receipts_in[p]:>10}{out_by_provider[p]:>9}"
            f"{counters['duplicates'].get(p, 0):>8}{counters['stale'].get(p, 0):>8}"
        )
    if stats.dead_letters:
        lines.append(
            "  dead letters: " + ", ".join(f"{k}={v}" for k, v in stats.dead_letters.items())
        )
    for what, counts in (
        ("skipped", stats.skipped),
        ("unmapped statuses (UNKNOWN)", stats.unmapped_statuses),
        ("unreadable times (kept raw)", stats.unparsed_times),
    ):
        if counts:
            lines.append(f"  {what}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return "\n".join(lines)
