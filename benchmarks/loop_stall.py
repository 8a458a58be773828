"""Longest event-loop stall while one fetched batch of large bodies goes through the core
(heartbeats, scrapes and signals wait that long): the whole batch in one `Core.process` call
against `process_in_slices`.

    .venv/bin/python benchmarks/loop_stall.py [--bodies 32] [--reports 6000]
"""

from __future__ import annotations

import argparse
import time

import anyio

from pipeline.core import Core, InputRecord
from pipeline.runtime import SLICE_BYTES, process_in_slices
from pipeline.state import Window


def batch(bodies: int, reports: int) -> list[InputRecord]:
    out = []
    for i in range(bodies):
        items = ",".join(
            f'{{"sid":{i * reports + n},"uid":"u","user_receive_time":"2026-11-30 10:00:00",'
            f'"error_msg":"","mobile":"1380000{n % 10000:04d}","report_status":"SUCCESS"}}'
            for n in range(reports)
        )
        body = b"sms_status=" + f"[{items}]".encode()
        headers = [("provider", b"yunpian"), ("endpoint", b"push")]
        out.append(InputRecord("raw", 0, i, 1_764_496_800_000, headers, body))
    return out


async def stall(records: list[InputRecord], sliced: bool) -> tuple[float, float, int]:
    """(longest gap between ticks in s, CPU s of the batch, events out)."""
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    core = Core(Window(10_000_000, 86_400_000))
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.01)
        cpu = time.process_time()
        if sliced:
            result = await process_in_slices(core, records)
        else:
            result = core.process(records)
            await anyio.sleep(0)
        cpu = time.process_time() - cpu
        done.set()
    return max(gaps), cpu, len(result.outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=32)
    parser.add_argument("--reports", type=int, default=6000)
    args = parser.parse_args()
    records = batch(args.bodies, args.reports)
    size = sum(len(r.value) for r in records)
    print(
        f"setup: {args.bodies} Yunpian bodies x {args.reports} reports, {size / 1e6:.1f} MB, "
        f"slice {SLICE_BYTES} bytes"
    )
    results = {}
    for sliced in (False, True):
        gap, cpu, events = anyio.run(stall, records, sliced)
        results[sliced] = events
        label = "sliced" if sliced else "one call"
        print(f"{label:9} longest stall {gap * 1000:8.1f} ms  CPU {cpu:6.2f} s  events {events}")
    assert results[False] == results[True] == args.bodies * args.reports, results


if __name__ == "__main__":
    main()
