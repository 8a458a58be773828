"""benchmarks/restart_bench.py without a broker: the stream it cuts in three."""

from __future__ import annotations

from benchmarks.corpus import Truth, generate
from benchmarks.restart_bench import MORE, stream

START = 1_700_000_000_000


def test_stream_is_the_corpus_cut_after_whole_records() -> None:
    parts, truth = stream(3_000, START)
    assert truth.receipts == 3_000 + 2 * MORE
    assert all(parts)  # something to drain, and new records before each restart
    counted = Truth()
    values, cumulative = [], []
    for record in generate(1, 3_000 + 2 * MORE, start=START, truth=counted):
        values.append(record.value)
        cumulative.append(counted.receipts)
    assert [r.value for p in parts for r in p] == values
    # Each cut comes after the last record that keeps its part within its receipts.
    first, second = len(parts[0]), len(parts[0]) + len(parts[1])
    assert cumulative[first - 1] <= 3_000 < cumulative[first]
    assert cumulative[second - 1] <= 3_000 + MORE < cumulative[second]
