"""Core benchmark: decode → normalise → dedupe → encode in one process, no Kafka.

Our `Core` (with the real `Window`) against the straightforward baseline (benchmarks/baseline/),
in the same run, on the same corpus (benchmarks/corpus.py), generated in memory once before any
timing. Each side runs several repetitions with a fresh core/window (or baseline) each time; the
best repetition counts. Both outputs must be equal as multisets of parsed events, with equal
dead-letter counts, or the run fails (exit status 1). A staged re-run of the core's pieces shows
where its time goes.

    python benchmarks/core_bench.py [--quick] [--receipts N] [--seed S] [--batch B]
        [--default-collector] [--states]

With `--states`, the core with its message lifecycle (a state record per emitted event, as
`run` writes to the state topic by default) is also run against the core without it, repetitions
interleaved; the last state record of each message must hold exactly the statuses emitted for
it, in order, or the run fails.

Both sides run under the run command's collector schedule (`pipeline/ops/_gc.py`: the
youngest generation every 50 000 allocations), as the product does; `--default-collector`
keeps CPython's (every 700).

Ends with `core receipts_per_s=<n> baseline_ratio=<x>`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import orjson  # noqa: E402

from benchmarks import baseline as baseline_mod  # noqa: E402
from benchmarks.corpus import Truth, generate_corpus  # noqa: E402
from pipeline.core import (  # noqa: E402
    Core,
    InputRecord,
    Lifecycle,
    Timeouts,
    emitted_outputs,
    window_verdicts,
)
from pipeline.errors import DecodeError, NotReceipts  # noqa: E402
from pipeline.ops import GEN0_THRESHOLD  # noqa: E402
from pipeline.state import Window  # noqa: E402
from schemas import MessageState  # noqa: E402

FULL = {"receipts": 1_000_000, "core_reps": 5, "baseline_reps": 2}
QUICK = {"receipts": 30_000, "core_reps": 3, "baseline_reps": 2}
#: Records per Core.process call, as the embedded runner batches (pipeline/cli/_embedded.py).
BATCH = 1000
#: The final timeout the state side runs with (the run command's default).
FINAL_TIMEOUT_MS = 43_200_000


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "?"


def machine_lines() -> list[str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        f"python      {platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable})",
        f"machine     {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"({_cpu_model()}), "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"libraries   msgspec {_version('msgspec')}, orjson {_version('orjson')}, "
        f"phonenumbers {_version('phonenumbers')}",
    ]


# -- one repetition of each side -------------------------------------------------------------------


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def run_core(
    records: Sequence[InputRecord],
    batch: int = BATCH,
    keep: bool = True,
    states: list[tuple[bytes, bytes]] | None = None,
) -> tuple[Timing, list[bytes], int, Core[Window]]:
    """((wall, CPU) seconds, output values, dead letters, core) for one pass, fresh window.

    With `keep` False the outputs of each batch are dropped after counting, as a sink drops
    them once sent: holding all 900 000 values (~630 MB) changes how the allocator behaves.
    With `states` (a list) the core runs with its lifecycle, and its state records are added
    there as (key, value) when `keep`.
    """
    window = Window(max_messages=5_000_000, ttl_ms=86_400_000, lifecycle=states is not None)
    life = None
    if states is not None:
        life = Lifecycle(window, Timeouts(FINAL_TIMEOUT_MS, capacity=window.max_messages))
    core = Core(window, lifecycle=life)
    values: list[bytes] = []
    dead = 0
    process = core.process
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(records), batch):
        result = process(records[i : i + batch])
        if keep:
            values += [o.value for o in result.outputs]
            if states is not None:
                states += [(s.key, s.value) for s in result.states]
        dead += len(result.dead_letters)
    return (time.perf_counter() - started, time.process_time() - cpu), values, dead, core


def run_baseline(
    records: Sequence[InputRecord], batch: int = BATCH, keep: bool = True
) -> tuple[Timing, list[bytes], int, baseline_mod.Baseline]:
    """The same for the baseline, fed the same batches."""
    base = baseline_mod.Baseline()
    values: list[bytes] = []
    dead = 0
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(records), batch):
        outputs, dead_letters = base.process(records[i : i + batch])
        if keep:
            values += [o.value for o in outputs]
        dead += len(dead_letters)
    seconds = (time.perf_counter() - started, time.process_time() - cpu)
    return seconds, values, dead, base


# -- state records --------------------------------------------------------------------------------


def run_core_states(
    records: Sequence[InputRecord], batch: int = BATCH, keep: bool = True
) -> tuple[Timing, list[tuple[bytes, bytes]], list[bytes]]:
    """((wall, CPU) seconds, state records as (key, value), output values) for one pass of
    the core with its lifecycle, fresh window; with `keep` False nothing is kept."""
    states: list[tuple[bytes, bytes]] = []
    timing, values, _, _ = run_core(records, batch, keep, states)
    return timing, states, values


def check_states(states: list[tuple[bytes, bytes]], values: list[bytes]) -> list[str]:
    """What is wrong with `states` (empty: nothing): one state record per emitted event, and
    each message's last state record lists the statuses emitted for it, in order, with their
    event ids, and a version above its earlier records'."""
    problems: list[str] = []
    if len(states) != len(values):
        problems.append(f"{len(states)} state records for {len(values)} events")
    emitted: dict[bytes, list[tuple[str, str]]] = {}
    for value in values:
        event = orjson.loads(value)
        key = f"{event['provider']}:{event['message_key']}".encode()
        emitted.setdefault(key, []).append((event["status"], event["event_id"]))
    decode = msgspec.json.Decoder(MessageState).decode
    last: dict[bytes, MessageState] = {}
    for key, value in states:
        state = decode(value)
        before = last.get(key)
        if before is not None and state.version <= before.version:
            problems.append(f"{key!r}: version {state.version} after {before.version}")
        last[key] = state
    for key, seen in emitted.items():
        held = last.get(key)
        got = None if held is None else [(s.status, s.event_id) for s in held.statuses]
        if got != seen:
            problems.append(f"{key!r}: last state lists {got}, emitted {seen}")
    return problems[:8]


def measure_states(
    records: Sequence[InputRecord], receipts: int, reps: int, batch: int, say: Any
) -> dict[str, float]:
    """The core with and without state records, repetitions interleaved: CPU per receipt of
    each, the difference per state record, and the state records checked."""
    without: list[float] = []
    with_states: list[float] = []
    problems: list[str] = []
    count = 0
    for rep in range(reps):
        (_, cpu), _, _, _ = run_core(records, batch, keep=False)
        without.append(cpu)
        (_, cpu), states, values = run_core_states(records, batch, keep=rep == 0)
        with_states.append(cpu)
        if rep == 0:
            problems = check_states(states, values)
            count = len(states)
            del states, values
            gc.collect()
    off, on = min(without), min(with_states)
    say(
        f"state records (the core with its lifecycle against without, interleaved, best CPU of "
        f"{reps}; final timeout {FINAL_TIMEOUT_MS // 1000} s):"
    )
    say(f"  without    {off / receipts * 1e6:8.2f} µs per receipt")
    say(f"  with       {on / receipts * 1e6:8.2f} µs per receipt  ({count} state records)")
    per_state = (on - off) / count * 1e6 if count else 0.0
    say(f"  ratio      {on / off:.2f}x CPU; {per_state:.2f} µs per state record")
    say(f"  check      {'ok' if not problems else 'WRONG'}")
    for line in problems:
        say(f"    {line}")
    return {
        "states_us_per_receipt": on / receipts * 1e6,
        "no_states_us_per_receipt": off / receipts * 1e6,
        "us_per_state_record": per_state,
        "states_ok": 0.0 if problems else 1.0,
    }


# -- equality -------------------------------------------------------------------------------------


def _canonical(value: bytes) -> bytes:
    return orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS)


def _digests(values: list[bytes]) -> Counter[bytes]:
    return Counter(hashlib.blake2b(_canonical(v), digest_size=16).digest() for v in values)


def _place(event: dict[str, Any]) -> tuple[Any, ...]:
    src = event["source"]
    return (event["event_id"], src["topic"], src["partition"], src["offset"], src["index"])


def compare(
    core_values: list[bytes], base_values: list[bytes], limit: int = 8
) -> tuple[bool, list[str]]:
    """Equal as multisets of parsed events? With a field-level report of the differences."""
    core_set, base_set = _digests(core_values), _digests(base_values)
    if core_set == base_set:
        return True, []
    only_core = core_set - base_set
    only_base = base_set - core_set
    lines = [
        f"MISMATCH: {sum(only_core.values())} events only from the core, "
        f"{sum(only_base.values())} only from the baseline"
    ]

    def pick(values: list[bytes], wanted: Counter[bytes]) -> dict[tuple[Any, ...], dict[str, Any]]:
        out = {}
        for v in values:
            if hashlib.blake2b(_canonical(v), digest_size=16).digest() in wanted:
                ev = orjson.loads(v)
                out[_place(ev)] = ev
        return out

    core_ev, base_ev = pick(core_values, only_core), pick(base_values, only_base)
    fields: Counter[str] = Counter()
    shown = 0
    for place in core_ev.keys() & base_ev.keys():
        a, b = core_ev[place], base_ev[place]
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        fields.update(f"{a['endpoint']}.{k}" for k in diff)
        if shown < limit:
            shown += 1
            lines.append(
                f"  {a['endpoint']} {place[1:]}: "
                + "; ".join(f"{k}: core={a.get(k)!r} baseline={b.get(k)!r}" for k in diff)
            )
    if fields:
        lines.append(
            "  differing fields (endpoint.field: events): "
            + ", ".join(f"{k}: {n}" for k, n in fields.most_common())
        )
    for name, mine, theirs in (("core", core_ev, base_ev), ("baseline", base_ev, core_ev)):
        alone = [ev for place, ev in mine.items() if place not in theirs]
        if alone:
            by_endpoint = Counter(ev["endpoint"] for ev in alone)
            lines.append(f"  events only the {name} emitted, by endpoint: {dict(by_endpoint)}")
            for ev in alone[:3]:
                lines.append(f"    {orjson.dumps(ev).decode()}")
    return False, lines


# -- per-stage profile of the core ----------------------------------------------------------------


def profile_stages(records: Sequence[InputRecord], batch: int = BATCH) -> dict[str, float]:
    """CPU seconds per stage of Core.process, each stage timed on its own per batch with the
    core's own pieces: route+decode+normalise (`Decoder.decode` per record), dedupe
    (`window_verdicts`: keys, hashes, `Window.check_batch`), encode (`emitted_outputs`)."""
    core = Core(Window(max_messages=5_000_000, ttl_ms=86_400_000))
    decode = core.decoder.decode
    window = core.window
    events_out = core.stats.events_out
    t_decode = t_dedupe = t_encode = 0.0
    clock = time.process_time
    gc.collect()
    for i in range(0, len(records), batch):
        chunk = records[i : i + batch]
        t0 = clock()
        events: list[Any] = []
        stamps: list[int] = []
        now_ms = 0
        for record in chunk:
            now_ms = max(now_ms, record.timestamp_ms)
            with contextlib.suppress(DecodeError, NotReceipts):
                decoded = decode(record)
                events += decoded
                stamps += [record.timestamp_ms] * len(decoded)
        t1 = clock()
        keys, codes, verdicts = window_verdicts(window, events, now_ms)
        t2 = clock()
        out = emitted_outputs(events, keys, codes, verdicts, stamps, events_out)
        del out
        t3 = clock()
        t_decode += t1 - t0
        t_dedupe += t2 - t1
        t_encode += t3 - t2
    return {"decode+normalise": t_decode, "dedupe": t_dedupe, "encode": t_encode}


def cprofile_summary(records: Sequence[InputRecord], batch: int, top: int) -> str:
    """The `top` functions by own time in one cProfile'd core pass (cProfile inflates small
    calls: read the shares, not the absolute times)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run_core(records, batch)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(["core cProfile, top functions by own time:", *lines[start:]])


# -- the benchmark --------------------------------------------------------------------------------


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def run(
    quick: bool,
    *,
    seed: int = 1,
    receipts: int | None = None,
    core_reps: int | None = None,
    baseline_reps: int | None = None,
    batch: int = BATCH,
    cprofile: int = 0,
    default_collector: bool = False,
    states: bool = False,
    out: Any = None,
) -> dict[str, float]:
    """Run the benchmark, print its report, return the figures (`outputs_equal` 1.0 or 0.0).

    Both sides run under the collector schedule of the product's run command
    (`pipeline.ops._gc.GEN0_THRESHOLD`), unless `default_collector`."""
    size = QUICK if quick else FULL
    receipts = receipts or size["receipts"]
    core_reps = core_reps or size["core_reps"]
    baseline_reps = baseline_reps or size["baseline_reps"]
    stream = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=stream, flush=True)

    say("== core benchmark: decode → normalise → dedupe → encode, one process, no Kafka ==")
    for line in machine_lines():
        say(line)
    started = time.perf_counter()
    records, truth = generate_corpus(seed, receipts)
    gen_s = time.perf_counter() - started
    # The corpus is the harness's, not the measured code's: keep it out of the collector's way
    # (a consumer holds one batch, not a million receipts).
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    if not default_collector:
        gc.set_threshold(GEN0_THRESHOLD, *thresholds[1:])
    say(f"collector   thresholds {gc.get_threshold()} for both sides")
    try:
        result = _measure(
            records, truth, seed, gen_s, core_reps, baseline_reps, batch, cprofile, say
        )
        if states:
            result.update(measure_states(records, truth.receipts, core_reps, batch, say))
            say()
        return result
    finally:
        del records
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        gc.collect()


def _measure(
    records: list[InputRecord],
    truth: Truth,
    seed: int,
    gen_s: float,
    core_reps: int,
    baseline_reps: int,
    batch: int,
    cprofile: int,
    say: Any,
) -> dict[str, float]:
    mb = truth.bytes / 1e6
    say(
        f"corpus      seed={seed} receipts={truth.receipts} records={truth.records} "
        f"bytes={truth.bytes} ({mb:.1f} MB), generated in memory in {gen_s:.1f}s"
    )
    say(
        f"            duplicates={truth.duplicates} ({truth.duplicates / truth.receipts:.1%}) "
        f"stale={truth.stale} malformed={sum(truth.malformed.values())} "
        f"({sum(truth.malformed.values()) / truth.records:.1%} of records) "
        f"non-receipts={sum(truth.non_receipts.values())} "
        f"headered={truth.headered / truth.records:.0%}"
    )
    say(
        f"method      best of {core_reps} (core) / {baseline_reps} (baseline) repetitions, "
        f"interleaved, time.process_time (CPU) and time.perf_counter (wall), fresh "
        f"Core+Window / Baseline per repetition; "
        f"core batches of {batch} records; Window(max_messages=5_000_000, ttl_ms=86_400_000); "
        f"corpus gc.freeze()d"
    )
    say()

    # Repetitions alternate (core, baseline, core, ...) so that both sides see the same
    # conditions on a machine whose load varies.
    core_times: list[Timing] = []
    base_times: list[Timing] = []
    first: dict[str, tuple[list[bytes], int, Any]] = {}
    sides: tuple[tuple[str, int, Any, list[Timing]], ...] = (
        ("core", core_reps, partial(run_core, records, batch), core_times),
        ("baseline", baseline_reps, partial(run_baseline, records, batch), base_times),
    )
    for rep in range(max(core_reps, baseline_reps)):
        for name, reps, side, times in sides:
            if rep >= reps:
                continue
            # The first repetition keeps every output for the equality check; the others
            # drop each batch's outputs as a sink would.
            (wall, cpu), values, dead, ran = side(keep=rep == 0)
            times.append((wall, cpu))
            say(
                f"  {name:<10}rep {rep + 1}: {wall:.3f}s wall {cpu:.3f}s CPU  "
                f"{_rate(truth.receipts, cpu):,.0f} receipts/CPU-s"
                + ("  (keeps all outputs for the check)" if rep == 0 else "")
            )
            if rep == 0:
                first[name] = (values, dead, ran)
                # What is kept for the check is the harness's: frozen like the corpus, so that
                # the collector does not walk the baseline's millions of objects during the
                # core's next repetitions (that made them 40% slower).
                gc.collect()
                gc.freeze()
            del values
    core_values, core_dead, core = first["core"]
    base_values, base_dead, base = first["baseline"]
    assert core is not None and base is not None

    # The CPU time of this process is the figure (other load on the machine does not count);
    # wall time beside it. Best and median of the repetitions.
    core_best, base_best = min(c for _, c in core_times), min(c for _, c in base_times)
    core_rps, base_rps = _rate(truth.receipts, core_best), _rate(truth.receipts, base_best)
    ratio = core_rps / base_rps
    say()
    say(
        f"  {'side':<10}{'best CPU s':>11}{'median CPU s':>13}{'best wall s':>12}"
        f"{'receipts/CPU-s':>16}{'median':>10}{'receipts/s wall':>16}{'events out':>12}"
        f"{'dead':>6}"
    )
    for name, times, values, dead in (
        ("core", core_times, core_values, core_dead),
        ("baseline", base_times, base_values, base_dead),
    ):
        cpu_best = min(c for _, c in times)
        cpu_median = statistics.median(c for _, c in times)
        wall_best = min(w for w, _ in times)
        say(
            f"  {name:<10}{cpu_best:>11.3f}{cpu_median:>13.3f}{wall_best:>12.3f}"
            f"{_rate(truth.receipts, cpu_best):>16,.0f}{_rate(truth.receipts, cpu_median):>10,.0f}"
            f"{_rate(truth.receipts, wall_best):>16,.0f}{len(values):>12}{dead:>6}"
        )
    say(f"  ratio     core / baseline = {ratio:.1f}x (best CPU time each)")
    say()

    equal, report = compare(core_values, base_values)
    dead_equal = core_dead == base_dead
    core_classes = dict(sorted(core.stats.dead_letters.items()))
    base_classes = dict(sorted(base.dead_letters.items()))
    say(
        f"equality    events: {'equal' if equal else 'DIFFERENT'} "
        f"({len(core_values)} vs {len(base_values)}); "
        f"dead letters: {'equal' if dead_equal else 'DIFFERENT'} ({core_dead} vs {base_dead})"
    )
    say(f"            dead-letter classes: core {core_classes}, baseline {base_classes}")
    for line in report:
        say(line)
    counters = core.window.counters.as_dict()
    core_dups, core_stale = sum(counters["duplicates"].values()), sum(counters["stale"].values())
    truth_ok = (
        sum(core.stats.receipts_in.values()) == truth.receipts
        and len(core_values) == truth.emitted
        and core_dups == truth.duplicates
        and core_stale == truth.stale
    )
    say(
        f"truth       generator expects {truth.emitted} emitted, {truth.duplicates} duplicates, "
        f"{truth.stale} stale; core: {len(core_values)}, {core_dups}, {core_stale}; "
        f"baseline: {len(base_values)}, {base.duplicates}, {base.stale} -> "
        f"{'ok' if truth_ok else 'DIFFERENT'}"
    )
    say()

    runs = [profile_stages(records, batch) for _ in range(max(2, min(core_reps, 3)))]
    stages = {name: min(r[name] for r in runs) for name in runs[0]}
    staged_total = sum(stages.values())
    say(
        f"core profile (staged re-run of Core.process's pieces, CPU time, best of {len(runs)} "
        f"per stage, {staged_total:.3f}s in all; best full run {core_best:.3f}s CPU):"
    )
    say(f"  {'stage':<18}{'seconds':>9}{'share':>8}{'µs/receipt':>12}")
    for name, seconds in stages.items():
        say(
            f"  {name:<18}{seconds:>9.3f}{seconds / staged_total:>8.0%}"
            f"{seconds / truth.receipts * 1e6:>12.2f}"
        )
    if cprofile:
        say()
        say(cprofile_summary(records, batch, cprofile))
    say()
    say(f"core receipts_per_s={core_rps:.0f} baseline_ratio={ratio:.1f}")
    result = {
        "receipts": float(truth.receipts),
        "records": float(truth.records),
        "megabytes": mb,
        "receipts_per_s": core_rps,
        "mb_per_s": mb / core_best,
        "baseline_receipts_per_s": base_rps,
        "baseline_mb_per_s": mb / base_best,
        "baseline_ratio": ratio,
        "outputs_equal": 1.0 if equal and dead_equal else 0.0,
        "truth_ok": 1.0 if truth_ok else 0.0,
    }
    result.update({f"stage_{k}_s": v for k, v in stages.items()})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK['receipts']} receipts, fewer repetitions"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--receipts", type=int, default=None)
    parser.add_argument("--core-reps", type=int, default=None)
    parser.add_argument("--baseline-reps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=BATCH, help="records per Core.process call")
    parser.add_argument(
        "--default-collector",
        action="store_true",
        help="CPython's collector schedule, not the run command's (pipeline/ops/_gc.py)",
    )
    parser.add_argument(
        "--cprofile", type=int, default=0, metavar="N", help="also print the top N functions"
    )
    parser.add_argument(
        "--states",
        action="store_true",
        help="also run the core with its lifecycle (state records) against without",
    )
    args = parser.parse_args(argv)
    result = run(
        args.quick,
        seed=args.seed,
        receipts=args.receipts,
        core_reps=args.core_reps,
        baseline_reps=args.baseline_reps,
        batch=args.batch,
        cprofile=args.cprofile,
        default_collector=args.default_collector,
        states=args.states,
    )
    return 0 if result["outputs_equal"] and result.get("states_ok", 1.0) else 1


if __name__ == "__main__":
    sys.exit(main())
