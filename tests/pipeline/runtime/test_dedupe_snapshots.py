"""The dedupe stage's periodic snapshots: one window at a time, spread over the interval, only
of windows that changed, copied on the loop and written in the background while the window
goes on."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from pipeline.config import Settings
from pipeline.kafka import Sink, new_restorer
from pipeline.runtime import DedupeStage
from pipeline.state import load_snapshot

pytestmark = pytest.mark.anyio


async def test_windows_are_snapshotted_one_at_a_time_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(output_topic="out", state_dir=str(tmp_path), snapshot_interval_s=60)
    stage = DedupeStage(
        settings, Sink(lambda _: None, "dlq"), new_restorer(settings), 2, anyio.Event()
    )

    async def offsets(partition: int) -> tuple[int, int]:
        return 0, 10 + partition  # the output partition's (begin, end), as the broker says

    monkeypatch.setattr(stage.restorer, "offsets", offsets)
    for p in (0, 1, 2):
        stage.windows[p] = stage.new_window()
        stage.windows[p].check_batch([100 + p], [0], [0], 1_700_000_000_000)
    stage.unsaved = {0, 1}  # window 2 had no batch: nothing new to snapshot
    now = stage.saved_at
    # Three windows: one is due every third of the interval, the one snapshotted longest ago.
    assert stage.due_snapshot(now + 19) is None
    assert stage.due_snapshot(now + 21) == 0
    await stage.save([0], wait=False)
    assert stage.saving is not None and stage.due_snapshot(now + 1000) is None
    stage.windows[0].check_batch([7], [0], [0], 1_700_000_000_001)  # goes on meanwhile
    await stage.saved()
    snap = load_snapshot(tmp_path, stage.group, "out", 0, stage.capacity, 86_400_000)
    assert snap is not None and snap.offset == 10
    assert len(snap.window) == 1 and len(stage.windows[0]) == 2  # as it was when copied
    assert stage.due_snapshot(stage.saved_at + 21) == 1
    await stage.save([1])
    assert stage.due_snapshot(stage.saved_at + 1000) is None  # until new batches
    stage.unsaved = {0}  # a batch for window 0 again: at most one snapshot per interval
    assert stage.due_snapshot(stage.snapshot_at[0] + 59) is None
    assert stage.due_snapshot(stage.snapshot_at[0] + 61) == 0
