"""Window snapshots (pipeline/state/_snapshot.py): round trip, and nothing bad is ever trusted."""

from __future__ import annotations

import logging
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core import DUPLICATE, EMIT
from pipeline.state import (
    Snapshot,
    Window,
    _snapshot,
    load_snapshot,
    save_snapshot,
    snapshot_path,
    snapshot_usable,
)
from schemas import STATUS_INDEX

GROUP, TOPIC, P = "grp.dedupe", "sms-receipts", 3
CAP, TTL = 1_000, 3_600_000
SENT = STATUS_INDEX["SENT"]
KEYS = [f"uspeedo:m{i}".encode() for i in range(300)]


def filled() -> Window:
    w = Window(CAP, TTL, hash_key=os.urandom(16))
    hashes = w.hashes(KEYS)
    assert set(w.check_batch(hashes, [SENT] * len(KEYS), [0] * len(KEYS), 1_000)) == {EMIT}
    return w


def saved(tmp_path: Path) -> tuple[Window, Path]:
    w = filled()
    return w, save_snapshot(tmp_path, GROUP, TOPIC, P, w, offset=1234, newest_ts=5678)


def rejected(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    reason: str,
    level: int = logging.WARNING,
    **kw: object,
) -> None:
    args: dict[str, object] = dict(group=GROUP, topic=TOPIC, partition=P, capacity=CAP, ttl_ms=TTL)
    args.update(kw)
    caplog.clear()
    with caplog.at_level(logging.INFO, "pipeline.snapshot"):
        assert load_snapshot(tmp_path, **args) is None  # type: ignore[arg-type]
    assert [r.levelno for r in caplog.records] == [level]
    assert reason in caplog.records[0].getMessage()


def test_round_trip(tmp_path: Path) -> None:
    w, path = saved(tmp_path)
    assert path == snapshot_path(tmp_path, GROUP, TOPIC, P) and path.parent == tmp_path
    snap = load_snapshot(tmp_path, GROUP, TOPIC, P, CAP, TTL)
    assert snap is not None
    assert (snap.offset, snap.newest_ts) == (1234, 5678)
    assert snap.window.dump() == w.dump()
    # The restored window recognises the messages it held.
    verdicts = snap.window.check_batch(snap.window.hashes(KEYS), [SENT] * 300, [0] * 300, 2_000)
    assert set(verdicts) == {DUPLICATE}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rejected(tmp_path, caplog, "no snapshot", level=logging.INFO)  # a first start: normal


def test_truncated_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, path = saved(tmp_path)
    data = path.read_bytes()
    rnd = random.Random(1)
    for cut in [0, 1, 10, 60, 80, 100, len(data) - 1, *rnd.sample(range(len(data)), 20)]:
        path.write_bytes(data[:cut])
        rejected(tmp_path, caplog, "ignoring snapshot")


def test_bit_flips_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, path = saved(tmp_path)
    data = path.read_bytes()
    rnd = random.Random(2)
    # Every byte of the header and names, then samples of the payload.
    positions = [*range(100), *rnd.sample(range(100, len(data)), 60)]
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 1 << rnd.randrange(8)
        path.write_bytes(flipped)
        rejected(tmp_path, caplog, "ignoring snapshot")
    path.write_bytes(data)  # the unflipped file is fine
    assert load_snapshot(tmp_path, GROUP, TOPIC, P, CAP, TTL) is not None


@pytest.mark.parametrize(
    ("group", "topic", "partition"),
    [("other", TOPIC, P), (GROUP, "other", P), (GROUP, TOPIC, P + 1)],
)
def test_foreign(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, group: str, topic: str, partition: int
) -> None:
    """Another partition's file in this partition's place (copied, renamed) is refused."""
    _, path = saved(tmp_path)
    path.rename(snapshot_path(tmp_path, group, topic, partition))
    rejected(tmp_path, caplog, "foreign", group=group, topic=topic, partition=partition)


@pytest.mark.parametrize(("capacity", "ttl"), [(CAP + 1, TTL), (CAP, TTL - 1)])
def test_incompatible_bounds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capacity: int, ttl: int
) -> None:
    saved(tmp_path)
    rejected(tmp_path, caplog, "incompatible", capacity=capacity, ttl_ms=ttl)


def test_other_format_version(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[8:10] = (_snapshot.SNAPSHOT_FORMAT + 1).to_bytes(2, "little")
    path.write_bytes(data)
    rejected(tmp_path, caplog, f"format version {_snapshot.SNAPSHOT_FORMAT + 1}")


def test_not_a_snapshot(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    snapshot_path(tmp_path, GROUP, TOPIC, P).write_bytes(b"x" * 500)
    rejected(tmp_path, caplog, "wrong magic")


_CRASH = """
import os, signal, sys
from pipeline.state import Window, _snapshot
w = Window(1000, 3_600_000, hash_key=bytes(16))
w.check_batch(w.hashes([b"uspeedo:crash"]), [0], [0], 1)
if sys.argv[2] == "before-rename":
    os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
else:  # mid-write: half the bytes reach the temporary file, then the process dies
    data = _snapshot.encode_snapshot("grp.dedupe", "sms-receipts", 3, w, 99, 99)
    os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
    _snapshot.encode_snapshot = lambda *a: data[: len(data) // 2]
_snapshot.save_snapshot(sys.argv[1], "grp.dedupe", "sms-receipts", 3, w, 99, 99)
"""


@pytest.mark.parametrize("when", ["before-rename", "mid-write"])
def test_a_crash_while_saving_keeps_the_old_snapshot(tmp_path: Path, when: str) -> None:
    w, _ = saved(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path), when], check=False)
    assert proc.returncode == -9
    strays = list(tmp_path.glob("*.tmp*"))
    assert len(strays) == 1  # the crashed write's temporary file
    snap = load_snapshot(tmp_path, GROUP, TOPIC, P, CAP, TTL)
    assert snap is not None and snap.offset == 1234 and snap.window.dump() == w.dump()
    # The next save replaces the snapshot and clears the leftover.
    save_snapshot(tmp_path, GROUP, TOPIC, P, w, offset=2000, newest_ts=0)
    assert list(tmp_path.glob("*.tmp*")) == []
    snap = load_snapshot(tmp_path, GROUP, TOPIC, P, CAP, TTL)
    assert snap is not None and snap.offset == 2000


def test_usable_against_the_partition_offsets() -> None:
    snap = Snapshot(Window(10, 10), offset=100, newest_ts=0)
    assert (
        snapshot_usable(snap, 0, 100)
        and snapshot_usable(snap, 100, 500)
        and snapshot_usable(snap, 50, 150)
    )
    assert not snapshot_usable(snap, 0, 99)  # beyond the end: topic recreated or truncated
    assert not snapshot_usable(snap, 101, 500)  # records it does not reflect were deleted


@pytest.mark.parametrize("group", ["../escape", "a/b", ".", "..", "x+y", "é" * 150])
def test_any_group_id_is_a_file_in_the_state_dir(tmp_path: Path, group: str) -> None:
    w = filled()
    path = save_snapshot(tmp_path, group, TOPIC, P, w, offset=1, newest_ts=2)
    assert path.parent == tmp_path and len(path.name) <= 255
    snap = load_snapshot(tmp_path, group, TOPIC, P, CAP, TTL)
    assert snap is not None and snap.offset == 1
    assert snapshot_path(tmp_path, group, TOPIC, P) != snapshot_path(
        tmp_path, group + "z", TOPIC, P
    )


def test_state_dir_is_created_private(tmp_path: Path) -> None:
    state = tmp_path / "state" / "deeper"
    save_snapshot(state, GROUP, TOPIC, P, filled(), offset=0, newest_ts=0)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
