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

from benchmarks.e2e.config import PYTHON, ROOT
from benchmarks.e2e.contenders import Bench
from benchmarks.e2e.expected import Expected, LatencyCorpus

# -- profile of our processor -------------------------------------------------------------------


def classify_profile(path: Path) -> tuple[dict[str, float], int]:
    """Share of py-spy samples per stage, from raw (collapsed) stacks."""
    core_src = (ROOT / "pipeline" / "_core.py").read_text().splitlines()
    start = next(
        (i + 1 for i, line in enumerate(core_src) if "encode = _ENCODER.encode" in line), 0
    )
    end = next(
        (
            i + 1
            for i, line in enumerate(core_src)
            if line.strip() == "return BatchResult(outputs, dead)" and i + 1 > start
        ),
        10**9,
    )
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or not stack:
            continue
        frames = stack.split(";")
        counts[_stage(frames, start, end)] += int(n)
        total += int(n)
    return {k: v / total for k, v in counts.most_common()} if total else {}, total


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?):(?P<line>\d+)\)$")


def _stage(frames: list[str], enc_start: int, enc_end: int) -> str:
    """The stage a py-spy stack belongs to (first match, outermost concern first)."""
    parsed = []
    for f in frames:
        m = _FRAME.match(f)
        parsed.append((m["func"], m["file"], int(m["line"])) if m else (f, "", 0))
    names = [func for func, _, _ in parsed]
    files = [file for _, file, _ in parsed]

    def in_files(*parts: str) -> bool:
        return any(part in f for f in files for part in parts)

    def in_funcs(*prefixes: str) -> bool:
        return any(n.startswith(prefixes) for n in names)

    if in_funcs("OutputFollower."):
        return "output follower (fetch + parse our own output, window.load_batch)"
    if in_files("_window.py"):
        return "window (dedupe: hashing, check_batch)"
    if in_files("/providers/", "_normalise.py", "_timefmt.py", "_context.py", "schemas/") or (
        in_funcs("Decoder.", "sniff", "_header")
    ):
        return "decode + normalise (providers, msgspec/orjson decode)"
    for _func, file, line in reversed(parsed):
        if file.endswith("_core.py"):
            if enc_start <= line <= enc_end:  # Core.process or its comprehensions
                return "encode (msgspec encode, output records)"
            return "core glue (keys, lists)"
    producing = in_files("aiokafka/producer", "_partitioner.py") or in_funcs("Sink.")
    if producing and in_files("aiokafka/codec.py"):
        return "aiokafka produce: lz4 compression"
    if producing:
        return "aiokafka produce: batch build, partitioner, send"
    if in_files("aiokafka/consumer", "aiokafka/record", "aiokafka/codec.py"):
        return "aiokafka consume: fetch, decompress, parse records"
    if in_funcs("Processor.run_batch"):
        return "loop glue (InputRecords, gather, commit)"
    if in_files("aiokafka/"):
        return "aiokafka network/protocol (both directions)"
    if in_files("asyncio/", "uvloop", "anyio/") or in_funcs("Processor."):
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
