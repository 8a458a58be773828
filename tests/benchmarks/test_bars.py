"""benchmarks/e2e/bars.py: each bar is checked on the figures it names, met or not."""

from __future__ import annotations

from benchmarks.corpus import generate_corpus
from benchmarks.e2e.bars import CoreAlone, bar_lines, client_lines, core_alone
from benchmarks.e2e.contenders import LatencyPhase, Result


def result(name: str, cpu_us: float, p99_ms: float | None = None, rate: float = 1000.0) -> Result:
    r = Result(name, receipts_per_s=rate, wall_s=1.0, cpu_drain_s=cpu_us * rate / 1e6)
    r.correct = True
    if p99_ms is not None:
        r.phases.append(LatencyPhase(0.5, p99_ms=p99_ms))
    return r


def test_bars_met_and_not_met() -> None:
    results = [
        result("single no-state", 12.0, p99_ms=90),
        result("ours x1 no-state", 20.0, p99_ms=160, rate=900),
        result("ours x1", 30.0, rate=600),
        result("relay", 4.0),
        result("quix", 20.0),
    ]
    lines = bar_lines(results, CoreAlone(us=7.5, states_us=12.0))
    assert len(lines) == 7, lines
    text = "\n".join(lines)
    # 12.0 ≤ 7.5 + 4.0 + 1.0; 20.0 > 12.0 + 4.0 + 1.0
    assert "single no-state: CPU µs ≤ core alone" in text
    assert [line.endswith("NOT met") for line in lines] == [
        False,  # single vs core + relay
        True,  # partitioned vs single + relay
        True,  # partitioned: 20 / 20 = 1.0 < 1.25
        False,  # single: 20 / 12 = 1.67 ≥ 1.5
        False,  # single p99 90 ≤ 100
        True,  # partitioned p99 160 > 150
        True,  # state: 900 / 600 = 1.5 > 1.10
    ], lines


def test_without_the_contenders_a_bar_names_it_is_not_checked() -> None:
    assert bar_lines([result("single", 12.0)], None) == []


def test_core_alone_runs_with_and_without_state_records() -> None:
    records, truth = generate_corpus(1, 2_000)
    core = core_alone(records, truth.receipts, reps=1)
    assert core.us > 0 and core.states_us > 0


def test_the_bare_clients_hop_and_state_writes_beside_ours() -> None:
    results = [
        result("single no-state", 12.0),
        result("ours x1 no-state", 20.0),
        result("relay", 3.0),
        result("relay hop", 10.5),
        result("relay state", 5.0),
    ]
    assert client_lines(results) == [
        "  second hop: bare client (relay hop − relay) 7.5 µs, "
        "ours (ours x1 no-state − single no-state) 8.0 µs",
        "  state writes: bare client (relay state − relay) 2.0 µs "
        "(17 % of single no-state, 10 % of ours x1 no-state)",
    ]
    assert client_lines(results[:2]) == []  # no relay: nothing to compare
