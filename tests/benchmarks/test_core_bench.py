"""benchmarks/core_bench.py's state-record side: its check catches wrong state records."""

from __future__ import annotations

from benchmarks.core_bench import check_states, run_core_states
from benchmarks.corpus import generate_corpus


def test_the_core_with_its_lifecycle_passes_the_check_and_a_wrong_stream_does_not() -> None:
    records, _ = generate_corpus(1, 3_000)
    _, states, values = run_core_states(records, batch=100)
    assert states and check_states(states, values) == []

    keys = [key for key, _ in states]
    again = next(i for i in range(len(keys) - 1, -1, -1) if keys.index(keys[i]) != i)
    # A message's last state record lost: its earlier one lists fewer statuses.
    assert any(
        "last state lists" in p for p in check_states(states[:again] + states[again + 1 :], values)
    )
    # Its two records swapped: the version goes back.
    first = keys.index(keys[again])
    swapped = list(states)
    swapped[first], swapped[again] = swapped[again], swapped[first]
    assert any("version" in p for p in check_states(swapped, values))
    # One event without its state record.
    assert any("state records for" in p for p in check_states(states[1:], values))
