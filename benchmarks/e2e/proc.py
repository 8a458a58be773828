"""Process-tree accounting from /proc: CPU, peak RSS and run-queue wait of a contender."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

# -- process-tree accounting --------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [
                    int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                ]
    return out


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += child_pids(p)
    return pids


def is_running(pid: int) -> bool:
    """Alive and not a zombie (without reaping it: its rusage is collected by wait4 later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _cpu_s(pid: int) -> float:
    """utime+stime of the process and its waited-for children, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / _TICK


def _hwm_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _runq_wait_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (schedstat)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
    return total / 1e9


class TreeSampler:
    """Samples CPU seconds, run-queue wait and per-process peak RSS of a process tree."""

    def __init__(self, pid: int, period: float = 0.05) -> None:
        self.pid = pid
        self.period = period
        self.series: list[tuple[float, float, float]] = []  # (wall time, cpu s, runq wait s)
        self.hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def sample(self) -> tuple[float, float, float]:
        cpu = wait = 0.0
        for p in _tree(self.pid):
            cpu += _cpu_s(p)
            wait += _runq_wait_s(p)
            kb = _hwm_kb(p)
            if kb > self.hwm.get(p, 0):
                self.hwm[p] = kb
        point = (time.time(), cpu, wait)
        self.series.append(point)
        return point

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, when: float) -> tuple[float, float]:
        """(tree CPU s, run-queue wait s) at the last sample taken at or before `when`."""
        best = (0.0, 0.0)
        for t, cpu, wait in self.series:
            if t > when:
                break
            best = (cpu, wait)
        return best

    @property
    def peak_rss_mb(self) -> float:
        return sum(self.hwm.values()) / 1024
