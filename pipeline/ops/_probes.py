"""Liveness and readiness, as Kubernetes probes ask them (`/livez`, `/readyz`).

Live: every loop that has started made progress (a batch done, or a poll that found nothing:
idle by choice) within `bound_s`. A loop stuck in a wait that never ends (a rebalance that
never completes, a lock never released) stops beating, and liveness says which one and for how
long. Before a loop's first beat the process is starting, which is live (start-up has its own
timeouts). Ready: started, assigned and restored, i.e. every part that reported says ready.

The loop writes, the HTTP thread reads: each write replaces one dict entry (atomic under the
GIL), each read copies the dict first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Health", "Probes"]

Clock = Callable[[], float]


class Probes(Protocol):
    """What the HTTP endpoint asks: `live()` and `ready()`, each `(ok, reason)`."""

    def live(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


class Health:
    def __init__(self, bound_s: float, clock: Clock = time.monotonic) -> None:
        self.bound_s = bound_s
        self._clock = clock
        #: loop name → (monotonic time of its last progress, whether that was an idle poll)
        self._loops: dict[str, tuple[float, bool]] = {}
        self._ready: dict[str, bool] = {}

    def beat(self, loop: str = "loop") -> None:
        """`loop` made progress (call at its start and after every batch)."""
        self._loops[loop] = (self._clock(), False)

    def idle(self, loop: str = "loop") -> None:
        """`loop` polled and found nothing: idle by choice, which is progress too."""
        self._loops[loop] = (self._clock(), True)

    def set_ready(self, ready: bool, part: str = "loop") -> None:
        """`part` is (or is no longer) started, assigned and restored."""
        self._ready[part] = ready

    def live(self, now: float | None = None) -> tuple[bool, str]:
        now = self._clock() if now is None else now
        loops = dict(self._loops)
        if not loops:
            return True, "starting"
        for name, (last, _) in sorted(loops.items()):
            if now - last > self.bound_s:
                return False, (
                    f"{name} made no progress for {now - last:.0f}s (bound {self.bound_s:g}s)"
                )
        if all(idle for _, idle in loops.values()):
            return True, "idle"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        parts = dict(self._ready)
        if not parts:
            return False, "not started"
        waiting = sorted(name for name, ready in parts.items() if not ready)
        if waiting:
            return False, "not assigned and restored: " + ", ".join(waiting)
        return True, "ok"
