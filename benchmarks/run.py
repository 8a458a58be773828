"""Run the benchmarks: `python benchmarks/run.py core|window|e2e|all [--quick]`.

Each benchmark is a module of this directory with `run(quick: bool) -> dict[str, float]`:
`core` → core_bench.py, `window` → window_bench.py, `e2e` → e2e_bench.py. A benchmark whose
module does not exist yet is "not yet implemented": asked for by name, that fails the run; `all`
runs what exists and says what it skipped. The run ends with a table of every figure, then one
line per benchmark (`<name> key=value ...`). The exit status is non-zero when a benchmark asked
for is missing, raised, or reported a failed check (`outputs_equal` or `ok` equal to 0).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCHMARKS: dict[str, str] = {
    "core": "benchmarks.core_bench",
    "window": "benchmarks.window_bench",
    "e2e": "benchmarks.e2e_bench",
}
#: The figures each benchmark's last line shows first (the rest follow).
HEADLINE: dict[str, tuple[str, ...]] = {
    "core": ("receipts_per_s", "baseline_ratio"),
    "window": ("bytes_per_msg", "checks_per_s", "rebuild_5m_s"),
    "e2e": ("receipts_per_s", "relay_ratio", "peer_ratio"),
}
#: Keys that mean "a check failed" when 0.
CHECKS = ("outputs_equal", "ok")

Runner = Callable[[bool], dict[str, float]]


def load(name: str) -> Runner | None:
    """The benchmark's `run`, or None when its module (or its `run`) does not exist yet."""
    module_name = BENCHMARKS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    runner: Runner | None = getattr(module, "run", None)
    return runner


def _fmt(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite
        return str(value)
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def headline(name: str, result: dict[str, float]) -> str:
    keys = [k for k in HEADLINE.get(name, ()) if k in result] or list(result)
    return f"{name} " + " ".join(f"{k}={_fmt(result[k])}" for k in keys)


def failed_checks(result: dict[str, float]) -> list[str]:
    return [k for k in CHECKS if k in result and not result[k]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--quick", action="store_true", help="small sizes (each under ~30 s)")
    args = parser.parse_args(argv)

    names = list(BENCHMARKS) if args.which == "all" else [args.which]
    results: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    skipped: list[str] = []
    for name in names:
        runner = load(name)
        if runner is None:
            print(f"{name}: not yet implemented", flush=True)
            if args.which == "all":
                skipped.append(name)
            else:
                problems.append(f"{name}: not yet implemented")
            continue
        print(f"\n### {name}{' (quick)' if args.quick else ''}\n", flush=True)
        started = time.perf_counter()
        try:
            result = runner(args.quick)
        except Exception:
            traceback.print_exc()
            problems.append(f"{name}: raised (see above)")
            continue
        print(f"({name} took {time.perf_counter() - started:.1f}s)", flush=True)
        results[name] = result
        problems += [f"{name}: check {k} failed" for k in failed_checks(result)]

    if results:
        width = max(len(k) for r in results.values() for k in r)
        print("\n| benchmark | figure" + " " * (width - 6) + " | value |")
        print("|---|---|---|")
        for name, result in results.items():
            for key, value in result.items():
                print(f"| {name} | {key:<{width}} | {_fmt(value)} |")
    if skipped:
        print(f"\nskipped (not yet implemented): {', '.join(skipped)}")
    for problem in problems:
        print(f"FAILED {problem}")
    print()
    for name, result in results.items():
        print(headline(name, result))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
