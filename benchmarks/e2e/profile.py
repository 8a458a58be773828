"""py-spy profiles of our processor, one per topology run, sorted into pipeline stages.

Each stage's share of the samples times the contender's CPU µs per receipt from its own
(unprofiled) drain in the same run gives the stage's cost in CPU µs per receipt: where every
microsecond of each topology goes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e.config import OURS, PYTHON
from benchmarks.e2e.contenders import Bench, Result
from benchmarks.e2e.expected import Expected, LatencyCorpus

#: The stages, in report order. A sample belongs to the first whose test matches its stack.
STAGES = (
    "restore and snapshot bookkeeping",
    "commit",
    "window (keys, hashing, verdicts)",
    "decode + normalise",
    "encode (events, output records)",
    "core glue (batch lists, dead letters, sizing)",
    "sink: compression",
    "sink: batch build, partitioner, send",
    "fetch: consume, decompress, parse",
    "dedupe stage: forwarding",
    "route stage: slices, input records",
    "stage loop (settle, hand-over)",
    "network, protocol",
    "event loop, awaiting",
    "start-up (imports)",
    "shutdown (last snapshot, clients closed)",
    "other",
)
#: Stages outside the drain the µs figures cover: left out of the shares.
OUTSIDE = (STAGES[14], STAGES[15])


def classify_profile(path: Path) -> tuple[dict[str, float], int]:
    """Share of py-spy samples per stage (report order), from raw (collapsed) stacks."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or not stack:
            continue
        counts[stage_of(stack.split(";"))] += int(n)
        total += int(n)
    if not total:
        return {}, 0
    return {s: counts[s] / total for s in STAGES if counts[s]}, total


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


def stage_of(frames: Sequence[str]) -> str:
    """The stage a py-spy stack (outermost frame first) belongs to, by the modules and
    functions of pipeline/ (core/, state/, kafka/, runtime/) and aiokafka it passes through."""
    parsed = [(m["func"], m["file"]) if (m := _FRAME.match(f)) else (f, "") for f in frames]
    names = [func for func, _ in parsed]
    files = [file for _, file in parsed]

    def in_files(*parts: str) -> bool:
        return any(part in f for f in files for part in parts)

    def in_funcs(*names_: str) -> bool:
        return any(n.endswith(names_) for n in names)

    if in_files("importlib", "<frozen"):
        return STAGES[14]
    if in_funcs("Stage.close", "Processor.close", ".stop"):
        return STAGES[15]
    if in_files("state/_restore.py", "state/_snapshot.py") or in_funcs(
        ".restore_step", ".open_window", ".save", ".catch_up"
    ):
        return STAGES[0]
    if in_funcs(".commit", "commit_offsets", "send_offsets_to_transaction", "commit_transaction"):
        return STAGES[1]
    if in_files("state/_window.py", "state/_identities.py") or in_funcs("window_verdicts"):
        return STAGES[2]
    if in_files("/providers/", "/normalise/", "schemas/", "core/_routing.py"):
        return STAGES[3]
    if in_funcs("emitted_outputs", "encode_events"):
        return STAGES[4]
    if in_files("core/_process.py", "core/_records.py", "core/_verdicts.py"):
        return STAGES[5]
    producing = in_files("aiokafka/producer", "kafka/_partitioner.py", "kafka/_sink.py") or (
        in_files("kafka/_transactions.py")
    )
    if producing and in_files("aiokafka/codec.py"):
        return STAGES[6]
    if producing:
        return STAGES[7]
    if in_files("aiokafka/consumer", "aiokafka/record", "aiokafka/codec.py", "kafka/_fetch.py"):
        return STAGES[8]
    if in_files("runtime/_dedupe.py"):
        return STAGES[9]
    if in_files("runtime/_route.py", "runtime/_single.py"):
        return STAGES[10]
    if in_files("aiokafka/"):
        return STAGES[12]
    if any(part in files[-1] for part in ("asyncio/", "uvloop", "anyio/", "selectors")):
        return STAGES[13]  # the loop's own work, under our outermost frames
    if in_files("runtime/_stage.py", "runtime/_processor.py"):
        return STAGES[11]
    return STAGES[16]


def profiled(results: Sequence[Result]) -> list[Result]:
    """The contenders of the run to profile: ours, one process each."""
    return [r for r in results if r.name in OURS and "--workers" not in OURS[r.name]]


def profile_ours(
    bench: Bench,
    placed: Sequence[Any],
    expected: Expected,
    lat: LatencyCorpus,
    say: Any,
    results: Sequence[Result],
) -> dict[str, dict[str, float]]:
    """Drain the raw topic once more under py-spy with each of our one-process contenders of
    the run; per contender, each stage's CPU µs per receipt (share × the contender's own
    unprofiled CPU µs per receipt)."""
    if not (shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")):
        say("profile     py-spy not installed: skipped")
        return {}
    out: dict[str, dict[str, float]] = {}
    for r in profiled(results):
        slug = r.name.replace(" ", "")
        path = bench.workdir / f"profile-{slug}.txt"
        res = asyncio.run(bench.contender(r.name, placed, expected, lat, profile_to=path))
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not path.exists():
            say(f"profile     {r.name}: py-spy wrote nothing: skipped")
            continue
        shares, samples = classify_profile(path)
        # The drain the µs figure covers starts after the imports and ends before the shutdown.
        outside = sum(shares.pop(stage, 0.0) for stage in OUTSIDE)
        shares = {stage: share / (1 - outside) for stage, share in shares.items()}
        us = r.cpu_us_per_receipt
        out[r.name] = {stage: share * us for stage, share in shares.items()}
        say()
        say(
            f"profile of {r.name} (py-spy, 400 Hz, {samples} samples over the process's life, "
            f"{outside:.0%} of them start-up or shutdown, left out; drain at "
            f"{res.receipts_per_s:,.0f} receipts/s under the profiler; µs = share × {us:.1f} "
            "CPU µs per receipt unprofiled):"
        )
        for stage, share in shares.items():
            say(f"  {stage:<48}{share:>6.1%}{share * us:>7.2f} µs")
    return out
