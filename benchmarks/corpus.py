"""A realistic, deterministic corpus of raw provider bodies for the benchmarks.

`generate(seed, receipts)` yields `InputRecord`s as the ingress would land them on the input topic:
all five providers and every format the event contract maps, push and poll, realistic batch
sizes, ~10% duplicate reports (whole-body provider retries, poll pages overlapping earlier pages,
the same report by push and by poll, repeated polls of a bulk), some out-of-order statuses (a late
`SENT_OK`/`Waiting`/submit result after the final), ~1% malformed bodies (truncated JSON/XML,
invalid UTF-8, wrong types, provider error responses, an XML entity bomb now and then), a few
non-receipt bodies (inbound SMS, USSD, replies, statistics), phone numbers of several countries in
each provider's own spellings, time strings and epochs around a configurable start time, and record
timestamps advancing as a Poisson-like arrival process. ~80% of records carry `provider`/`endpoint`
headers (often `account`, `content-type`, and `tz` for gateways in another zone); the rest must be
recognised by shape.

Everything derives from one `random.Random(seed)`: the same seed gives the same bytes, on any
machine and hash seed (no set or hash() ordering is used).

The generator also keeps the ground truth (`Truth`): every receipt it writes belongs to a logical
message it tracks, so it knows how many reports the dedupe window must emit, drop as duplicates
and drop as stale (the contract's window rules, no eviction within the corpus span).

Layout: benchmarks/generators/ holds one generator per provider (yunpian, uspeedo, ultiroam,
smspartner, tencent: the formats and retries of each), `noise` (non-receipt and malformed bodies),
`stream` (the shared clock, random source and record placement), `truth` and `values`; this file
composes them into one `Generator` and is the public API.

CLI: `python benchmarks/corpus.py --seed 1 --receipts 100000 --out FILE.jsonl` writes kcat `-J`
JSON lines (`payload_b64` instead of `payload` for the rare body that is not UTF-8).
"""

from __future__ import annotations

import argparse
import base64
import heapq
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script (benchmarks/ is not installed)
    sys.path.insert(0, str(ROOT))

from benchmarks.generators.noise import NoiseGenerator  # noqa: E402
from benchmarks.generators.smspartner import SmspartnerGenerator  # noqa: E402
from benchmarks.generators.tencent import TencentGenerator  # noqa: E402
from benchmarks.generators.truth import (  # noqa: E402
    DEFAULT_SPAN_S,
    DEFAULT_START,
    FORMATS,
    MALFORMED,
    MALFORMED_KINDS,
    NON_RECEIPT,
    NON_RECEIPT_KINDS,
    Proto,
    Truth,
)
from benchmarks.generators.ultiroam import UltiroamGenerator  # noqa: E402
from benchmarks.generators.uspeedo import UspeedoGenerator  # noqa: E402
from benchmarks.generators.values import _cumulative, _pick  # noqa: E402
from benchmarks.generators.yunpian import YunpianGenerator  # noqa: E402
from pipeline.core import InputRecord  # noqa: E402

#: Re-exported for the tests and benchmarks that read the corpus.
__all__ = ["FORMATS", "MALFORMED_KINDS", "NON_RECEIPT_KINDS", "Generator", "Truth", "generate"]


class Generator(
    UspeedoGenerator,
    UltiroamGenerator,
    YunpianGenerator,
    SmspartnerGenerator,
    TencentGenerator,
    NoiseGenerator,
):
    """The stream simulation: every provider's generator on one clock; `records()` yields the
    corpus."""

    # -- the stream -----------------------------------------------------------------------------

    def records(self) -> Iterator[InputRecord]:
        rng = self.rng
        builders: tuple[tuple[Callable[[int], Proto | None], float], ...] = _cumulative(
            (self._uspeedo, 0.21),
            (self._ultiroam, 0.22),
            (self._yunpian, 0.17),
            (self._smspartner, 0.15),
            (self._tencent, 0.25),
        )
        while self.left > 0:
            scheduled = self.scheduled
            if scheduled and scheduled[0][0] <= self.now:
                proto = heapq.heappop(scheduled)[2]
                if len(proto.seen) > self.left:
                    continue
            else:
                x = rng.random()
                if x < MALFORMED:
                    proto = self._malformed()
                elif x < MALFORMED + NON_RECEIPT:
                    proto = self._non_receipt()
                else:
                    built = _pick(rng, builders)(self.left)
                    if built is None:
                        continue
                    proto = built
            record = self._record(proto)
            yield record
            self._advance(len(proto.seen))


# -- public API ---------------------------------------------------------------------------------


def parse_start(start: str | int) -> int:
    """Epoch milliseconds of an RFC 3339 time (or of an int of epoch milliseconds)."""
    if isinstance(start, int):
        return start
    moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def generate(
    seed: int,
    receipts: int,
    *,
    start: str | int = DEFAULT_START,
    span_s: float = DEFAULT_SPAN_S,
    truth: Truth | None = None,
) -> Iterator[InputRecord]:
    """Records carrying exactly `receipts` receipt reports (plus malformed and non-receipt
    bodies), deterministic from `seed`. Pass a `Truth` to collect the ground truth."""
    return Generator(seed, receipts, parse_start(start), span_s, truth).records()


def generate_corpus(seed: int, receipts: int, **kwargs: Any) -> tuple[list[InputRecord], Truth]:
    """The whole corpus in memory, with its ground truth."""
    truth = Truth()
    records = list(generate(seed, receipts, truth=truth, **kwargs))
    return records, truth


def kcat_line(record: InputRecord) -> bytes:
    """One kcat `-J` JSON line (no trailing newline); `payload_b64` for a body that is not UTF-8."""
    flat: list[str] = []
    for key, value in record.headers:
        flat += [key, value.decode()]
    envelope: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "ts": record.timestamp_ms,
        "headers": flat,
        "key": None,
    }
    try:
        envelope["payload"] = record.value.decode()
    except UnicodeDecodeError:
        envelope["payload"] = None
        envelope["payload_b64"] = base64.b64encode(record.value).decode()
    return orjson.dumps(envelope)


def write_jsonl(records: Iterator[InputRecord], out: IO[bytes]) -> int:
    count = 0
    for record in records:
        out.write(kcat_line(record) + b"\n")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--out", default="-", help="JSON-lines file, or - for stdout")
    parser.add_argument("--start", default=DEFAULT_START, help="RFC 3339 time of the first record")
    parser.add_argument(
        "--span-s",
        type=float,
        default=DEFAULT_SPAN_S,
        help="seconds of record time the corpus spans",
    )
    args = parser.parse_args(argv)
    truth = Truth()
    started = time.perf_counter()
    records = generate(args.seed, args.receipts, start=args.start, span_s=args.span_s, truth=truth)
    if args.out == "-":
        write_jsonl(records, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with open(args.out, "wb") as out:
            write_jsonl(records, out)
    seconds = time.perf_counter() - started
    summary = truth.as_dict()
    print(
        f"corpus: seed={args.seed} records={summary['records']} receipts={summary['receipts']} "
        f"bytes={summary['bytes']} duplicates={summary['duplicates']} stale={summary['stale']} "
        f"malformed={summary['malformed']} non_receipts={summary['non_receipts']} "
        f"headered={summary['headered']} in {seconds:.2f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
