"""Instructions per receipt of the core, by stage and by provider, counted by valgrind.

CPU time on a shared 2-CPU machine moves by up to 2x between runs of the same code; the number
of instructions the same work executes does not (it moves by well under 1%). So before/after
comparisons of the core are made here in instructions, beside the CPU-time benchmarks
(core_bench.py, decode_bench.py), which give the rates.

    python benchmarks/instructions.py [--receipts N] [--seed S] [--tree DIR ...] [--jobs J]

Stages: ``core`` (`Core.process`), ``decode``, ``dedupe`` (the window's verdicts), ``lifecycle``
(the same verdicts from a window that keeps lifecycle data, and a state record per emitted
event: less ``dedupe``, the message lifecycle's own cost) and ``encode``.

Each figure is a child process under `valgrind --tool=cachegrind --cache-sim=no`, run once
with one pass and once with two passes over the same records (a fresh core per pass, caches
warm from the first): the difference is one pass, with start-up, imports and set-up cancelled
out. `--tree` adds other checkouts of this repository (e.g. a `git worktree` of an older commit)
measured on the same corpus, which the first tree's generator writes once. Each child checks
that a pass produced what it should (events out, or the decode's event count), so a broken tree
cannot report a low count.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("core", "decode", "dedupe", "lifecycle", "encode")
PROVIDERS = ("uspeedo", "ultiroam", "yunpian", "smspartner", "tencent")


# -- the child: one stage, N passes, inside one tree ----------------------------------------------


def child(tree: str, corpus: str, stage: str, passes: int) -> None:
    if sys.path[0] != tree:
        sys.path.insert(0, tree)
    try:
        from pipeline.core import EMIT, Core, InputRecord, emitted_outputs, window_verdicts
        from pipeline.errors import DecodeError, NotReceipts
        from pipeline.state import Window
    except ImportError:  # a tree from before the layered layout, measured for comparison
        from pipeline.normalise._errors import (  # type: ignore[import-not-found,no-redef]
            DecodeError,
            NotReceipts,
        )

        from pipeline.core import EMIT, Core, InputRecord, emitted_outputs, window_verdicts
        from pipeline.state import Window

    records = [InputRecord(*r) for r in pickle.loads(Path(corpus).read_bytes())]
    # Always two cores: a window's allocation is large, and must cancel out like the rest.
    cores = [Core(Window(max_messages=5_000_000, ttl_ms=86_400_000)) for _ in range(2)]
    lifecycles = []
    if stage == "lifecycle":  # made before anything is counted, as the cores are
        from pipeline.core import Lifecycle, Timeouts

        lifecycles = [
            Lifecycle(
                Window(max_messages=5_000_000, ttl_ms=86_400_000, lifecycle=True),
                Timeouts(43_200_000, capacity=5_000_000),
            )
            for _ in range(2)
        ]
    batches = [records[i : i + 1000] for i in range(0, len(records), 1000)]
    decoded = []  # the later stages' input, decoded before anything is counted
    for batch in batches:
        events, stamps = [], []
        for record in batch:
            with contextlib.suppress(DecodeError, NotReceipts):
                got = cores[0].decoder.decode(record)
                events += got
                stamps += [record.timestamp_ms] * len(got)
        decoded.append((events, stamps))
    expected = sum(len(events) for events, _ in decoded)
    for core in cores[:passes]:
        done = 0
        if stage == "core":
            done = sum(len(core.process(batch).outputs) for batch in batches)
            assert core.window is not None
            expected = sum(core.window.counters.emitted)
        elif stage == "decode":
            decode = core.decoder.decode
            for record in records:
                with contextlib.suppress(DecodeError, NotReceipts):
                    done += len(decode(record))
        elif stage == "dedupe":
            for events, _ in decoded:
                done += len(window_verdicts(core.window, events, 1_700_000_000_000)[-1])
        elif stage == "lifecycle":
            # The dedupe stage again, with a window that keeps lifecycle data and a state record
            # per emitted event: the difference from "dedupe" is the lifecycle's.
            lifecycle = lifecycles.pop()
            window = lifecycle.window
            expected = 0
            for events, stamps in decoded:
                keys, _, verdicts = window_verdicts(window, events, 1_700_000_000_000)
                done += len(lifecycle.states(events, keys, verdicts, stamps))
                expected += verdicts.count(EMIT)
        else:
            for events, stamps in decoded:
                # (keys, codes, verdicts); older trees: (keys, verdicts), no codes
                columns = window_verdicts(None, events, 0)[:-1]
                emit = bytearray(len(events))  # EMIT is 0: every event encoded
                out = emitted_outputs(events, *columns, emit, stamps, core.stats.events_out)
                done += len(out)
        if done != expected:
            raise SystemExit(f"{stage}: {done} results, expected {expected}")


# -- the parent: corpus, valgrind runs, table -----------------------------------------------------


def write_corpus(seed: int, receipts: int, out: Path) -> dict[str, tuple[Path, int]]:
    """The whole corpus, and one file per provider of its receipt records (by the core's route),
    each with its receipt count."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.corpus import generate_corpus
    from pipeline.core import Core
    from pipeline.errors import DecodeError, NotReceipts

    records, _ = generate_corpus(seed, receipts)
    files = {"all": (out / "all.pickle", receipts)}
    files["all"][0].write_bytes(pickle.dumps([tuple(r) for r in records]))
    decoder = Core(None).decoder
    by_provider: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        provider = decoder._route(record)[0].PROVIDER
        try:
            counts[provider] += len(decoder.decode(record))
        except (DecodeError, NotReceipts):
            continue
        by_provider[provider].append(tuple(record))
    for provider, rows in by_provider.items():
        path = out / f"{provider}.pickle"
        path.write_bytes(pickle.dumps(rows))
        files[provider] = (path, counts[provider])
    return files


_REFS = re.compile(rb"I\s+refs:\s+([\d,]+)")


def instructions(tree: Path, corpus: Path, stage: str, passes: int) -> int:
    command = [
        *("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"),
        *(sys.executable, __file__, "--child", str(tree), str(corpus), stage, str(passes)),
    ]
    done = subprocess.run(command, capture_output=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"{tree} {stage}: {done.stderr.decode(errors='replace')[-2000:]}")
    return int(found.group(1).replace(b",", b""))


def per_receipt(tree: Path, corpus: Path, stage: str, receipts: int) -> float:
    return (instructions(tree, corpus, stage, 2) - instructions(tree, corpus, stage, 1)) / receipts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receipts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tree", action="append", type=Path, default=[], help="another checkout")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at once")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        tree, corpus, stage, passes = args.child
        child(tree, corpus, stage, int(passes))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    trees = [ROOT, *(t.resolve() for t in args.tree)]
    with tempfile.TemporaryDirectory() as tmp:
        files = write_corpus(args.seed, args.receipts, Path(tmp))
        rows = [(stage, *files["all"]) for stage in STAGES]
        rows += [(f"decode {p}", *files[p]) for p in PROVIDERS if p in files]
        print(
            f"corpus      seed={args.seed} receipts={args.receipts}, by provider: "
            + ", ".join(f"{p} {files[p][1]}" for p in PROVIDERS if p in files)
        )
        print(
            f"method      valgrind cachegrind, instructions of (2 passes - 1 pass) / receipts; "
            f"python {sys.version.split()[0]}"
        )
        print("trees       " + ", ".join(f"[{i}] {t}" for i, t in enumerate(trees)))
        jobs = {
            (name, i): (tree, path, name.split()[0], n)
            for name, path, n in rows
            for i, tree in enumerate(trees)
        }
        with ThreadPoolExecutor(args.jobs) as pool:
            results = dict(
                zip(jobs, pool.map(lambda a: per_receipt(*a), jobs.values()), strict=True)
            )
    head = " | ".join(f"[{i}] instr/receipt" for i in range(len(trees)))
    ratios = " | ".join(f"[{i}]/[0]" for i in range(1, len(trees)))
    print(f"\n| stage | {head} |" + (f" {ratios} |" if ratios else ""))
    print("|---|" + "---:|" * (2 * len(trees) - 1))
    for name, _, _ in rows:
        own = results[name, 0]
        cells = " | ".join(f"{results[name, i]:,.0f}" for i in range(len(trees)))
        rel = " | ".join(f"{results[name, i] / own:.2f}" for i in range(1, len(trees)))
        print(f"| {name} | {cells} |" + (f" {rel} |" if rel else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
