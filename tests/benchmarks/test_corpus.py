"""The benchmark corpus generator (benchmarks/corpus.py), and core vs baseline on a small corpus.

The corpus is checked against the pipeline itself: its sniffing and decoders must recognise
every format, the window must reproduce the generator's ground truth exactly, and the
straightforward baseline (benchmarks/baseline/) must emit the same events as the core.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.corpus import (
    FORMATS,
    MALFORMED_KINDS,
    NON_RECEIPT_KINDS,
    Truth,
    generate,
    generate_corpus,
    kcat_line,
    write_jsonl,
)
from pipeline.cli import read_records
from pipeline.core import Core, InputRecord, sniff
from pipeline.state import Window

ROOT = Path(__file__).resolve().parents[2]
SEED = 3
RECEIPTS = 60_000
ENDPOINTS = {
    "uspeedo.GetUSMSSendReceipt",
    "uspeedo.push",
    "ultiroam.query_sms_result",
    "ultiroam.sms_result",
    "ultiroam.sms_deliver_status",
    "yunpian.push",
    "smspartner.bulk-status",
    "tencent.PullSmsSendStatus",
    "tencent.callback",
    "tencent.SendSms",
}


class CoreRun:
    def __init__(self, records: list[InputRecord]) -> None:
        window = Window(max_messages=5_000_000, ttl_ms=86_400_000)
        self.core = Core(window)
        self.values: list[bytes] = []
        self.dead = 0
        for i in range(0, len(records), 1000):
            result = self.core.process(records[i : i + 1000])
            self.values += [o.value for o in result.outputs]
            self.dead += len(result.dead_letters)
        self.counters = window.counters.as_dict()


@pytest.fixture(scope="module")
def corpus() -> tuple[list[InputRecord], Truth]:
    return generate_corpus(SEED, RECEIPTS)


@pytest.fixture(scope="module")
def core_run(corpus: tuple[list[InputRecord], Truth]) -> CoreRun:
    return CoreRun(corpus[0])


def _bytes(seed: int, receipts: int) -> bytes:
    return b"".join(kcat_line(r) + b"\n" for r in generate(seed, receipts))


def test_same_seed_same_bytes() -> None:
    first = _bytes(5, 5_000)
    assert first == _bytes(5, 5_000)
    assert first != _bytes(6, 5_000)


def test_same_bytes_in_another_process_and_hash_seed() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    script = ROOT / "benchmarks" / "corpus.py"
    out = subprocess.run(
        [sys.executable, str(script), "--seed", "5", "--receipts", "5000", "--out", "-"],
        capture_output=True,
        env=env,
        check=True,
        timeout=120,
    ).stdout
    assert out == _bytes(5, 5_000)


def test_exact_receipts_and_a_plausible_stream(corpus: tuple[list[InputRecord], Truth]) -> None:
    records, truth = corpus
    assert truth.receipts == RECEIPTS
    assert truth.records == len(records)
    assert truth.bytes == sum(len(r.value) for r in records)
    stamps = [r.timestamp_ms for r in records]
    assert stamps == sorted(stamps)
    span_s = (stamps[-1] - stamps[0]) / 1000
    assert 3600 < span_s < 4 * 3600, span_s  # about the default two hours
    offsets: dict[int, list[int]] = {}
    for r in records:
        offsets.setdefault(r.partition, []).append(r.offset)
    for partition, seen in offsets.items():
        assert seen == list(range(len(seen))), partition
    headered = sum(1 for r in records if r.headers)
    assert 0.75 < headered / len(records) < 0.85
    assert all(dict(r.headers).get("provider") for r in records if r.headers)


def test_every_format_kind_and_malformation(corpus: tuple[list[InputRecord], Truth]) -> None:
    _, truth = corpus
    assert set(truth.formats) == set(FORMATS)
    assert set(truth.non_receipts) == set(NON_RECEIPT_KINDS)
    assert set(truth.malformed) == set(MALFORMED_KINDS)


def test_the_pipeline_sees_every_format(
    corpus: tuple[list[InputRecord], Truth], core_run: CoreRun
) -> None:
    records, _ = corpus
    endpoints: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    for value in core_run.values:
        event: dict[str, Any] = orjson.loads(value)
        endpoints[event["endpoint"]] += 1
        channels[event["channel"]] += 1
    assert set(endpoints) == ENDPOINTS
    assert set(channels) == {"push", "poll", "submit"}
    # Body shapes the endpoint names do not tell apart, recognised by the pipeline's sniffing.
    shapes: Counter[str] = Counter()
    routes: Counter[tuple[str, str | None]] = Counter()
    for r in records:
        body = r.value
        if body.startswith(b"sms_status=%255B"):
            shapes["yunpian double-encoded"] += 1
        elif body.startswith(b"sms_status=%5B"):
            shapes["yunpian"] += 1
        elif body.startswith(b"<?xml") and b"CDATA" in body:
            shapes["smspartner xml"] += 1
        elif body.startswith(b"{") and b'"statut"' in body:
            shapes["smspartner single"] += 1
        elif body.startswith(b'[{"SessionNo"'):
            shapes["uspeedo bare array"] += 1
        elif body.startswith(b'{"MsgType":2'):
            shapes["uspeedo MsgType 2"] += 1
        if not r.headers:
            route = sniff(body)
            if route is not None:
                routes[route.provider, route.endpoint] += 1
    assert len(shapes) == 6 and min(shapes.values()) >= 3, shapes
    # Unlabelled records of every provider are recognised by shape.
    assert {p for p, _ in routes} == {"uspeedo", "ultiroam", "yunpian", "smspartner", "tencent"}


def test_duplicate_stale_and_malformed_ratios(
    corpus: tuple[list[InputRecord], Truth], core_run: CoreRun
) -> None:
    records, truth = corpus
    duplicates = sum(core_run.counters["duplicates"].values())
    stale = sum(core_run.counters["stale"].values())
    assert 0.07 < duplicates / RECEIPTS < 0.14, duplicates / RECEIPTS
    assert 0.001 < stale / RECEIPTS < 0.01, stale / RECEIPTS
    assert 0.005 < core_run.dead / len(records) < 0.02, core_run.dead / len(records)
    assert sum(core_run.core.stats.skipped.values()) == sum(truth.non_receipts.values())
    # Every provider contributes duplicates; the stale ones come from the late-status providers.
    assert all(core_run.counters["duplicates"][p] > 0 for p in truth.by_provider)
    assert all(core_run.counters["stale"][p] > 0 for p in ("ultiroam", "smspartner", "tencent"))


def test_the_core_reproduces_the_ground_truth(
    corpus: tuple[list[InputRecord], Truth], core_run: CoreRun
) -> None:
    _, truth = corpus
    stats = core_run.core.stats
    assert dict(stats.receipts_in) == dict(truth.by_provider)
    assert len(core_run.values) == truth.emitted
    assert core_run.counters["duplicates"] == {
        p: truth.duplicates_by_provider.get(p, 0) for p in core_run.counters["duplicates"]
    }
    assert core_run.counters["stale"] == {
        p: truth.stale_by_provider.get(p, 0) for p in core_run.counters["stale"]
    }
    assert core_run.dead == sum(truth.malformed.values())
    assert not stats.unmapped_statuses


def test_core_and_baseline_emit_the_same_events(
    corpus: tuple[list[InputRecord], Truth], core_run: CoreRun
) -> None:
    from benchmarks.baseline import Baseline
    from benchmarks.core_bench import compare

    records, _ = corpus
    base = Baseline()
    outputs, dead = base.process(records)
    equal, report = compare(core_run.values, [o.value for o in outputs])
    assert equal, "\n".join(report)
    assert len(dead) == core_run.dead
    assert base.duplicates == sum(core_run.counters["duplicates"].values())
    assert base.stale == sum(core_run.counters["stale"].values())


def test_kcat_jsonl_round_trip(tmp_path: Path) -> None:
    records = list(generate(SEED, 20_000))
    assert any(r.value.startswith(b"\xff") or b"\xff" in r.value for r in records)
    path = tmp_path / "corpus.jsonl"
    with path.open("wb") as out:
        assert write_jsonl(iter(records), out) == len(records)
    assert list(read_records(str(path))) == records
