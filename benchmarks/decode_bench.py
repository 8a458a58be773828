"""Decode + normalise throughput of single bodies, per format (the provider decoders).

Times one provider module's `decode` on a realistic 100-report body, many times over, in one
process: reports per second and microseconds per report. Verifies the decoded events first.

Then every provider endpoint as it occurs in the mixed corpus (benchmarks/corpus.py, seed 1):
the corpus's receipt bodies grouped by the (provider, endpoint) the core routes them to, each
group decoded alone, best of 5, CPU time: reports per CPU-second per format.

    .venv/bin/python benchmarks/decode_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.core.normalise import RecordContext
from pipeline.core.providers import REGISTRY

REPORTS = 100


def yunpian_push(rng: random.Random) -> bytes:
    reports = [
        {
            "error_detail": rng.choice(["接收成功", "用户停机", "DELIVRD"]),
            "sid": 16741236146 + rng.randrange(10**9),
            "uid": f"order-{rng.randrange(10**6)}",
            "user_receive_time": f"2024-05-01 09:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
            "error_msg": rng.choice(["DELIVRD", "DELIVRD", "DELIVRD", "MK:0001", "EXPIRED"]),
            "mobile": rng.choice(["152", "138", "186"]) + f"{rng.randrange(10**8):08d}",
            "report_status": rng.choice(["SUCCESS", "SUCCESS", "SUCCESS", "FAIL"]),
        }
        for _ in range(REPORTS)
    ]
    return (
        b"sms_status=" + urllib.parse.quote_plus(json.dumps(reports, ensure_ascii=False)).encode()
    )


def tencent_poll(rng: random.Random) -> bytes:
    items = []
    for _ in range(REPORTS):
        sub = rng.choice(["137", "185", "139"]) + f"{rng.randrange(10**8):08d}"
        ok = rng.random() < 0.85
        items.append(
            {
                "UserReceiveTime": 1717484400 + rng.randrange(3600),
                "CountryCode": "86",
                "SubscriberNumber": sub,
                "PhoneNumber": "+86" + sub,
                "SerialNo": f"2433:{3309419081247836212 + rng.randrange(10**9)}",
                "ReportStatus": "SUCCESS" if ok else "FAIL",
                "Description": "DELIVRD" if ok else rng.choice(["MSBLACK", "EXPIRED", "用户关机"]),
                "SessionContext": f"order-{rng.randrange(10**6)}",
            }
        )
    body = {"Response": {"PullSmsSendStatusSet": items, "RequestId": "a0aabda6-cf91-4f3e"}}
    return json.dumps(body, ensure_ascii=False).encode()


BODIES: dict[str, tuple[str, Callable[[random.Random], bytes]]] = {
    "yunpian push (100 reports)": ("yunpian", yunpian_push),
    "tencent PullSmsSendStatus page (100)": ("tencent", tencent_poll),
}


def run(quick: bool) -> dict[str, float]:
    rng = random.Random(1)
    loops = 300 if quick else 3000
    ctx = RecordContext(topic="bench", partition=0, offset=0, timestamp_ms=1_717_484_400_000)
    print(f"python {platform.python_version()}, {loops} decodes per body, best of 5")
    results: dict[str, float] = {}
    for name, (provider, make) in BODIES.items():
        module = REGISTRY[provider]
        bodies = [make(rng) for _ in range(20)]
        endpoint = module.sniff(bodies[0])
        assert endpoint is not None
        events = module.decode(bodies[0], endpoint, ctx)
        if len(events) != REPORTS or len({e.message_key for e in events}) < REPORTS * 0.9:
            raise SystemExit(f"{name}: decoded {len(events)} events, expected {REPORTS}")
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for i in range(loops):
                module.decode(bodies[i % 20], endpoint, ctx)
            best = min(best, time.process_time() - started)
        rate = loops * REPORTS / best
        results[name] = rate
        print(f"  {name:<40} {rate:>12,.0f} reports/s  {1e6 / rate:6.2f} µs/report")
    return results


def run_corpus(quick: bool) -> dict[str, float]:
    """Reports per CPU-second of each (provider, endpoint) group of the mixed corpus."""
    from benchmarks.corpus import generate_corpus
    from pipeline.core import Decoder
    from pipeline.errors import DecodeError, NotReceipts

    records, truth = generate_corpus(1, 30_000 if quick else 300_000)
    decoder = Decoder()
    groups: dict[str, list[tuple[Any, bytes, str, RecordContext]]] = {}
    reports: dict[str, int] = {}
    for record in records:
        try:
            module, endpoint, account, tz = decoder._route(record)
            ctx = RecordContext(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp_ms,
                account=account,
                tz=tz,
            )
            n = len(module.decode(record.value, endpoint, ctx))
        except (DecodeError, NotReceipts):
            continue  # dead letters and non-receipts: not what a decoder's rate means
        name = f"{module.PROVIDER}.{endpoint}"
        groups.setdefault(name, []).append((module.decode, record.value, endpoint, ctx))
        reports[name] = reports.get(name, 0) + n
    print(
        f"corpus seed 1, {truth.receipts} receipts: each (provider, endpoint) group decoded "
        "alone, best of 5, CPU time"
    )
    results: dict[str, float] = {}
    for name in sorted(groups):
        calls = groups[name]
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for decode, body, endpoint, ctx in calls:
                decode(body, endpoint, ctx)
            best = min(best, time.process_time() - started)
        rate = reports[name] / best
        results[name] = rate
        print(
            f"  {name:<40} {rate:>12,.0f} reports/s  {1e6 / rate:6.2f} µs/report  "
            f"({len(calls)} bodies, {reports[name]} reports)"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    results = run(quick)
    print("decode " + " ".join(f"{k.split()[0]}_reports_per_s={v:.0f}" for k, v in results.items()))
    print()
    by_format = run_corpus(quick)
    slowest = min(by_format, key=by_format.__getitem__)
    print(f"decode corpus_slowest={slowest} reports_per_s={by_format[slowest]:.0f}")


if __name__ == "__main__":
    main()
