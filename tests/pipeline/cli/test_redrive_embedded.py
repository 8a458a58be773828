"""Embedded mode: `run --from DEADLETTERS.jsonl` takes the dead-letter file the embedded mode
wrote and processes each dead letter as its original record (headers the dead-lettering added
stripped, the source's topic, partition and offset restored)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "pipeline/sample/stream.jsonl"
DATA = ROOT / "tests/data"


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", *args], capture_output=True, cwd=ROOT, timeout=120
    )


def test_the_sample_dead_letter_file_is_accepted_and_dead_letters_the_same_again(
    tmp_path: Path,
) -> None:
    # Nothing was fixed: each dead letter is processed as its original and dead-lettered again,
    # exactly as the first time (same reason, same source, same original headers).
    out = tmp_path / "again.jsonl"
    result = run("--from", str(DATA / "sample_stream.deadletter.jsonl"), "--to", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b""
    again = (tmp_path / "again.jsonl.deadletter.jsonl").read_bytes()
    assert again == (DATA / "sample_stream.deadletter.jsonl").read_bytes()
    assert "3 records in, 0 receipts decoded, 0 events out" in result.stderr.decode()


def test_after_a_fix_the_dead_letters_give_the_original_events(tmp_path: Path) -> None:
    # A wrong rule: every unlabelled record of the sample's topic is taken for Tencent.
    bad = tmp_path / "bad.jsonl"
    result = run("--from", str(SAMPLE), "--to", str(bad), "--topic-map", "sms-raw=tencent")
    assert result.returncode == 0, result.stderr
    dead_file = tmp_path / "bad.jsonl.deadletter.jsonl"
    dead = [json.loads(line) for line in dead_file.read_text().splitlines()]
    wrong = [d for d in dead if "body is not a known tencent format" in d["headers"]]
    assert len(wrong) >= 5
    # Fixed (no topic map): the dead-letter file, processed again.
    fixed = tmp_path / "fixed.jsonl"
    result = run("--from", str(dead_file), "--to", str(fixed))
    assert result.returncode == 0, result.stderr
    events = fixed.read_bytes().splitlines()
    offsets = {int(d["headers"][d["headers"].index("source.offset") + 1]) for d in wrong}
    # Each event the original run emitted for those records comes out byte for byte (the source
    # topic, partition and offset are the original's).
    want = [
        line
        for line in (DATA / "sample_stream.expected.jsonl").read_bytes().splitlines()
        if json.loads(line)["source"]["offset"] in offsets
    ]
    assert want and set(want) <= set(events)
    # What stays dead-lettered is what the sample dead-letters anyway.
    left = (tmp_path / "fixed.jsonl.deadletter.jsonl").read_bytes()
    assert left == (DATA / "sample_stream.deadletter.jsonl").read_bytes()
    for line in events:
        assert json.loads(line)["source"]["topic"] == "sms-raw"
