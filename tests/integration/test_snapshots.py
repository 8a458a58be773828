"""Window snapshots: a restart seeds window p from its snapshot and reads only
the output written after it; a corrupt snapshot is ignored with a warning (bounded rebuild)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipeline.state import snapshot_path

from .conftest import (
    Spawn,
    check_outputs,
    corpus_stream,
    drain,
    end_offsets,
    produce,
    run_args,
    wait_processed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def test_restart_reads_only_after_the_snapshot_and_skips_a_corrupt_one(
    kafka_bootstrap: str, spawn: Spawn, tmp_path: Path
) -> None:
    topics, records, want = await corpus_stream(
        kafka_bootstrap, "snapshot", 71, 4_000, raw=2, out=2, dlq=1
    )
    half = len(records) // 2
    state = tmp_path / "state"
    # No periodic snapshot: only the one taken at shutdown.
    args = run_args(
        kafka_bootstrap,
        topics,
        extra=["--state-dir", str(state), "--snapshot-interval-s", "3600"],
    )

    # Run 1 takes the first half and snapshots both windows when it stops.
    await produce(kafka_bootstrap, records[:half])
    proc = spawn(args)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    assert await proc.stop() == 0 and proc.crashes() == []
    saved = {d["partition"]: d["offset"] for d in proc.messages("window snapshotted")}
    at_snapshot = await end_offsets(kafka_bootstrap, topics.out)
    assert saved == at_snapshot and all(at_snapshot.values()), (saved, at_snapshot)

    # Run 2 takes the second half and is killed: no snapshot of what it wrote.
    await produce(kafka_bootstrap, records[half:])
    proc = spawn(args)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    used = {d["partition"]: d for d in proc.messages("window restored")}
    assert all(d["snapshot"] and d["records"] == 0 for d in used.values()), used
    proc.kill()
    after_run2 = await end_offsets(kafka_bootstrap, topics.out)
    assert all(after_run2[p] > at_snapshot[p] for p in (0, 1)), (at_snapshot, after_run2)

    # Partition 0's snapshot is corrupted (one payload byte flipped).
    group = f"{topics.group}.dedupe"
    corrupt = snapshot_path(state, group, topics.out, 0)
    data = bytearray(corrupt.read_bytes())
    data[-10] ^= 0xFF
    corrupt.write_bytes(bytes(data))

    # A replay of all the input after a restart.
    sizes = Counter(r.partition for r in records)
    await produce(
        kafka_bootstrap, [r._replace(offset=r.offset + sizes[r.partition]) for r in records]
    )
    proc = spawn(args)
    await wait_processed(kafka_bootstrap, topics, procs=[proc])
    used = {d["partition"]: d for d in proc.messages("window restored")}
    # Partition 1 from its snapshot: exactly the records written after it.
    assert used[1]["snapshot"] and used[1]["from_offset"] == at_snapshot[1], used
    assert used[1]["records"] == after_run2[1] - at_snapshot[1], used
    # Partition 0: the corrupt file is named in a warning, the window rebuilt from the output.
    warned = [
        d
        for d in proc.logs
        if d.get("level") == "WARNING" and str(d.get("msg", "")).startswith("ignoring snapshot")
    ]
    assert len(warned) == 1 and str(corrupt) in warned[0]["msg"], warned
    assert "checksum" in warned[0]["msg"], warned
    assert not used[0]["snapshot"] and used[0]["records"] == after_run2[0], used
    assert await proc.stop() == 0 and proc.crashes() == []

    out = await drain(kafka_bootstrap, topics.out)
    assert len(out) == sum(after_run2.values()), "the replay emitted again"
    check_outputs(out, want.outputs, 2)
