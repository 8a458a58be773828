"""Decode + normalise throughput of single bodies, per format (issue: provider decoders).

Times one provider module's `decode` on a realistic 100-report body, many times over, in one
process: reports per second and microseconds per report. Verifies the decoded events first.

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.normalise._context import RecordContext
from pipeline.providers import REGISTRY

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    results = run(parser.parse_args().quick)
    print("decode " + " ".join(f"{k.split()[0]}_reports_per_s={v:.0f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
