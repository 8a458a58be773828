"""The collector's schedule: set by the run command, for the process's whole life."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ops import GEN0_THRESHOLD, tune_collector

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_collector_freezes_start_up_and_keeps_older_generations(collector: None) -> None:
    _, older, oldest = gc.get_threshold()
    tune_collector()
    assert gc.get_threshold() == (GEN0_THRESHOLD, older, oldest)
    assert gc.get_freeze_count() > 0


def test_run_command_tunes_the_collector(tmp_path: Path) -> None:
    script = (
        "import gc, sys; from pipeline.cli import main; "
        f"code = main(['run', '--from', {str(ROOT / 'pipeline/sample/stream.jsonl')!r}, "
        f"'--to', {os.devnull!r}]); print(code, gc.get_threshold()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    assert done.stdout.split() == [b"0", str(GEN0_THRESHOLD).encode()]
