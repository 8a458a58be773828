"""Restart with a snapshot at 1 M messages held: how long until the first new event is out
(the bar: within seconds), beside the same restart rebuilding its windows from the output topic.

    python benchmarks/restart_bench.py [--receipts N] [--quick]

On a local broker at its default configuration (or ``KAFKA_BOOTSTRAP_SERVERS``): the seed-1
corpus stream of N receipts (default 1 400 000: a little over 1 M messages held) is loaded onto
a raw topic of 4 partitions; ``python -m pipeline run --topology partitioned --state-dir D``
drains it and is stopped (SIGTERM: it snapshots every window as it stops). Then, twice, the
stream goes on (2 000 more receipts appended) and the processor is started again:

* **snapshot**: the same state directory, so each window loads its snapshot and reads only the
  output written after it;
* **rebuild**: an empty state directory, so each window is rebuilt from its output partition.

Each restart is timed from the process's start to the first new record on the output topic
(imports, broker connection, group join, restore, the first batch through both stages), and
its ``window restored`` log lines give the restore itself. Checked at the end: the output holds
exactly the events the generator's ground truth expects of the whole stream, each event id
once (the restarts lost and repeated nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.corpus import Truth, generate  # noqa: E402
from benchmarks.e2e.config import PARTITIONS, PYTHON, SEED  # noqa: E402
from benchmarks.e2e.expected import place  # noqa: E402
from benchmarks.e2e.kafka_io import Watcher, create_topics, load_topic, read_topic  # noqa: E402
from tools.broker import LocalKafka, kafka_bootstrap_from_env  # noqa: E402

#: Receipts appended before each restart: enough for a first batch on every partition.
MORE = 2_000


def stream(receipts: int, start: int) -> tuple[list[list[Any]], Truth]:
    """The stream from `start` (epoch ms) cut in three after whole records: up to `receipts`
    reports, then up to `MORE` more, then the rest (`MORE`)."""
    truth = Truth()
    parts: list[list[Any]] = [[], [], []]
    for record in generate(SEED, receipts + 2 * MORE, start=start, truth=truth):
        before = truth.receipts  # the generator counts a record once it is yielded
        parts[0 if before <= receipts else 1 if before <= receipts + MORE else 2].append(record)
    return parts, truth


def command(bootstrap: str, topics: dict[str, str], state_dir: Path) -> list[str]:
    return [
        *(PYTHON, "-m", "pipeline", "run", "--bootstrap-servers", bootstrap),
        *("--input-topics", topics["raw"], "--output-topic", topics["out"]),
        *("--dead-letter-topic", topics["dlq"], "--group-id", topics["group"]),
        *("--topology", "partitioned", "--state-dir", str(state_dir)),
    ]


async def until_stable(watcher: Watcher, topic: str, proc: subprocess.Popen[bytes]) -> int:
    """The output's record count once it has not moved for 5 s (the processor is idle)."""
    count, still = await watcher.count(topic), 0.0
    while still < 5.0:
        if proc.poll() is not None:
            raise SystemExit(f"the processor exited with {proc.returncode}")
        await asyncio.sleep(0.25)
        again = await watcher.count(topic)
        still = still + 0.25 if again == count else 0.0
        count = again
    return count


def stop(proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    """SIGTERM, wait, and the JSON log lines it wrote."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"the processor stopped with {proc.returncode}: {err[-2000:]!r}")
    lines = []
    for line in err.decode(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


async def restart(
    bootstrap: str, topics: dict[str, str], state_dir: Path, watcher: Watcher
) -> dict[str, Any]:
    """Start the processor; seconds to its first new output; the restore figures of its log."""
    before = await watcher.count(topics["out"])
    started = time.perf_counter()
    proc = subprocess.Popen(command(bootstrap, topics, state_dir), stderr=subprocess.PIPE)
    while await watcher.count(topics["out"]) == before:
        if proc.poll() is not None or time.perf_counter() - started > 300:
            proc.kill()
            raise SystemExit("the restarted processor wrote nothing within 300 s")
        await asyncio.sleep(0.02)
    first = time.perf_counter() - started
    await until_stable(watcher, topics["out"], proc)
    logged = stop(proc)
    restored = [r for r in logged if r.get("msg") == "window restored"]
    last = {r["partition"]: r for r in restored}  # a partition assigned twice: its last restore
    return {
        "first_output_s": first,
        "restore_s": max((r["seconds"] for r in restored), default=float("nan")),
        "restores": len(restored),
        "records_read": sum(r["records"] for r in restored),
        "messages": sum(r["messages"] for r in last.values()),
        "snapshots": sum(1 for r in last.values() if r.get("snapshot")),
        "log": logged,
    }


def event_id(record: Any) -> bytes:
    headers: list[tuple[str, bytes]] = record.headers
    return dict(headers).get("event_id", b"")


async def bench(bootstrap: str, receipts: int, work: Path) -> bool:
    run_id = uuid.uuid4().hex[:8]
    topics = {n: f"restart-{run_id}-{n}" for n in ("raw", "out", "dlq", "group")}
    began = time.perf_counter()
    # Starts ~2 h before now: every timestamp is in the window's 24 h and none ahead of now.
    parts, truth = stream(receipts, int(time.time() * 1000) - 7_800_000)
    print(
        f"corpus      seed {SEED}: {truth.receipts} receipts in {sum(map(len, parts))} records, "
        f"then {MORE} receipts before each restart; generated in "
        f"{time.perf_counter() - began:.1f}s"
    )
    await create_topics(
        bootstrap,
        [
            (topics["raw"], PARTITIONS, {"retention.ms": "-1"}),
            (topics["out"], PARTITIONS, {}),
            (topics["dlq"], 1, {}),
        ],
    )
    load = await load_topic(bootstrap, topics["raw"], place(parts[0], topics["raw"]))
    print(f"load        {len(parts[0])} records in {load:.1f}s")
    watcher = Watcher(bootstrap)
    await watcher.start()
    try:
        snapshots = work / "snapshots"
        began = time.perf_counter()
        proc = subprocess.Popen(command(bootstrap, topics, snapshots), stderr=subprocess.PIPE)
        drained = await until_stable(watcher, topics["out"], proc)
        saved = [r for r in stop(proc) if r.get("msg") == "window snapshotted"]
        # Each partition's last snapshot (a periodic one may come before the one at the stop).
        held = sum(r["messages"] for r in {r["partition"]: r for r in saved}.values())
        print(
            f"first run   {drained} events out in {time.perf_counter() - began - 5:.0f}s; "
            f"stopped with {len(saved)} window snapshots, {held:,} messages held"
        )
        rows = []
        for name, state, part in (("snapshot", snapshots, 1), ("rebuild", work / "empty", 2)):
            await load_topic(bootstrap, topics["raw"], place(parts[part], topics["raw"]))
            got = await restart(bootstrap, topics, state, watcher)
            rows.append((name, got))
            print(
                f"restart     {name:<9} first new output after {got['first_output_s']:6.2f}s; "
                f"{got['restores']} window restores, the slowest {got['restore_s']:.2f}s, "
                f"{got['records_read']:,} output records read; {got['messages']:,} messages "
                f"held, {got['snapshots']} of the windows from snapshots"
            )
            for r in got["log"]:
                if r.get("msg") in ("partitions assigned", "partitions revoked", "window restored"):
                    print(f"            {json.dumps(r)[:300]}")
        ids = await read_topic(bootstrap, topics["out"], event_id)
    finally:
        await watcher.stop()
    ok = len(ids) == truth.emitted == len(set(ids))
    print(
        f"check       output {len(ids)} events ({len(set(ids))} distinct ids), ground truth "
        f"{truth.emitted} -> {'ok' if ok else 'WRONG'}"
    )
    (_, snap), (_, rebuild) = rows
    print(
        f"restart first_output_s snapshot={snap['first_output_s']:.2f} "
        f"rebuild={rebuild['first_output_s']:.2f} messages_held={held}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receipts", type=int, default=1_400_000)
    parser.add_argument("--quick", action="store_true", help="100 000 receipts")
    args = parser.parse_args(argv)
    receipts = 100_000 if args.quick else args.receipts
    print("== restart benchmark: topology partitioned, snapshot vs rebuild ==")
    external = kafka_bootstrap_from_env()
    broker = None if external else LocalKafka()
    bootstrap = external or (broker.start() if broker else "")
    print(f"kafka       {'external ' + bootstrap if external else 'local broker ' + bootstrap}")
    try:
        with tempfile.TemporaryDirectory(prefix="restart-bench-") as work:
            return 0 if asyncio.run(bench(bootstrap, receipts, Path(work))) else 1
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
