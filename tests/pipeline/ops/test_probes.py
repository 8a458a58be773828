"""pipeline.ops._probes: liveness from the loops' progress, readiness from the parts' state."""

from __future__ import annotations

from pipeline.ops import Health


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_health_live_and_ready() -> None:
    clock = Clock()
    health = Health(20, clock=clock)
    assert health.live() == (True, "starting")  # start-up has its own timeouts
    assert health.ready() == (False, "not started")
    health.beat()
    clock.now += 19
    assert health.live() == (True, "ok")
    clock.now += 2  # 21 s without a batch or a poll: wedged (a wait that never ends)
    ok, reason = health.live()
    assert not ok and reason == "loop made no progress for 21s (bound 20s)"
    health.idle()  # a poll that found nothing is progress: idle by choice
    assert health.live() == (True, "idle")
    clock.now += 100
    assert health.live()[0] is False  # idle, but not polling either
    assert health.live(now=clock.now - 95)[0] is True
    health.set_ready(True)
    assert health.ready() == (True, "ok")
    health.set_ready(False)  # revoked: not ready until assigned and restored again
    assert health.ready() == (False, "not assigned and restored: loop")


def test_every_loop_must_progress() -> None:
    clock = Clock()
    health = Health(5, clock=clock)
    health.beat("route")
    health.beat("dedupe")
    clock.now += 4
    health.beat("route")  # route goes on, dedupe is stuck
    clock.now += 3
    ok, reason = health.live()
    assert not ok and reason.startswith("dedupe made no progress for 7s")
    health.set_ready(True, "route")
    health.set_ready(False, "dedupe")
    assert health.ready() == (False, "not assigned and restored: dedupe")
    health.set_ready(True, "dedupe")
    assert health.ready() == (True, "ok")
