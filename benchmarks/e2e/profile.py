"""py-spy profile of our processor, sorted into pipeline stages."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e.config import PYTHON
from benchmarks.e2e.contenders import Bench
from benchmarks.e2e.expected import Expected, LatencyCorpus

# -- profile of our processor -------------------------------------------------------------------


def classify_profile(path: Path) -> tuple[dict[str, float], int]:
    """Share of py-spy samples per stage, from raw (collapsed) stacks."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or not stack:
            continue
        counts[_stage(stack.split(";"))] += int(n)
        total += int(n)
    return {k: v / total for k, v in counts.most_common()} if total else {}, total


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


def _stage(frames: list[str]) -> str:
    """The stage a py-spy stack belongs to (first match, innermost concern of ours first), by
    the modules of pipeline/ (core/, state/, kafka/, runtime/)."""
    parsed = []
    for f in frames:
        m = _FRAME.match(f)
        parsed.append((m["func"], m["file"]) if m else (f, ""))
    names = [func for func, _ in parsed]
    files = [file for _, file in parsed]

    def in_files(*parts: str) -> bool:
        return any(part in f for f in files for part in parts)

    def in_funcs(*prefixes: str) -> bool:
        return any(n.startswith(prefixes) for n in names)

    if in_funcs("Restorer.") or in_files("state/_restore.py", "state/_snapshot.py"):
        return "window restore and snapshots"
    if in_files("state/_window.py", "state/_identities.py") or in_funcs("window_verdicts"):
        return "window (dedupe: keys, hashing, check_batch)"
    if in_files("/providers/", "/normalise/", "schemas/") or in_funcs("Decoder.", "sniff"):
        return "decode + normalise (providers, msgspec decode)"
    if in_funcs("emitted_outputs"):
        return "encode (msgspec encode, output records)"
    if in_files("core/_batch.py"):
        return "core glue (batch lists, dead letters, sizing)"
    producing = in_files("aiokafka/producer", "kafka/_partitioner.py", "kafka/_sink.py")
    if producing and in_files("aiokafka/codec.py"):
        return "aiokafka produce: compression"
    if producing:
        return "aiokafka produce: batch build, partitioner, send"
    if in_files("aiokafka/consumer", "aiokafka/record", "aiokafka/codec.py", "kafka/_fetch.py"):
        return "aiokafka consume: fetch, decompress, parse records"
    if in_files(
        "runtime/_stage.py", "runtime/_route.py", "runtime/_dedupe.py", "runtime/_single.py"
    ):
        return "loop glue (input records, settle, commit)"
    if in_files("aiokafka/"):
        return "aiokafka network/protocol (both directions)"
    if in_files("asyncio/", "uvloop", "anyio/"):
        return "event loop, awaiting"
    if in_files("importlib", "<frozen"):
        return "start-up (imports)"
    return "other"


def profile_ours(
    bench: Bench, placed: Sequence[Any], expected: Expected, lat: LatencyCorpus, say: Any
) -> dict[str, float]:
    """Drain the raw topic once more with our processor (1 worker) under py-spy."""
    if not (shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")):
        say("profile     py-spy not installed: skipped")
        return {}
    path = bench.workdir / "profile.txt"
    res = asyncio.run(bench.contender("ours x1", placed, expected, lat, profile_to=path))
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not path.exists():
        say("profile     py-spy wrote nothing: skipped")
        return {}
    shares, samples = classify_profile(path)
    say()
    say(
        f"profile of ours x1 (py-spy, 400 Hz, {samples} samples over the process's life; drain "
        f"at {res.receipts_per_s:,.0f} receipts/s under the profiler):"
    )
    for stage, share in shares.items():
        say(f"  {stage:<52}{share:>6.1%}")
    return shares
