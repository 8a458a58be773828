"""Kafka's own producer and consumer perf tools on the same broker: the broker's ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.e2e.config import PARTITIONS
from benchmarks.e2e.expected import Expected
from benchmarks.e2e.kafka_io import create_topics

# -- Kafka's own perf tools -----------------------------------------------------------------------


def tools_classpath() -> str | None:
    """Kafka's libs plus kafka-tools (fetched once with mvn next to the cached libs)."""
    from tools.broker import KAFKA_VERSION, fetch_kafka

    libs = fetch_kafka(KAFKA_VERSION)
    jar = next(libs.glob("kafka-tools-[0-9]*.jar"), None)
    if jar is None:
        tools = libs.parent / "tools"
        jar = tools / f"kafka-tools-{KAFKA_VERSION}.jar"
        if not jar.is_file():
            mvn = os.environ.get("MVN") or shutil.which("mvn")
            if not mvn:
                return None
            tools.mkdir(exist_ok=True)
            res = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                    f"-Dartifact=org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
                    f"-DoutputDirectory={tools}",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if res.returncode != 0 or not jar.is_file():
                return None
    return f"{libs}/*:{jar}"


def perf_tests(
    bootstrap: str, expected: Expected, workdir: Path, run_id: str, say: Any
) -> dict[str, float]:
    from tools.broker import find_java

    classpath = tools_classpath()
    if classpath is None:
        say("kafka perf tools: kafka-tools jar not available (no mvn?): skipped")
        return {}
    java = find_java()
    topic = f"e2e-{run_id}-perf"
    asyncio.run(create_topics(bootstrap, [(topic, PARTITIONS, {"retention.ms": "-1"})]))
    payloads = workdir / "payloads.txt"
    payloads.write_bytes(b"\n".join(v for _, v, _ in expected.pool))
    jvm = [java, "-Xmx512m", "-XX:+UseG1GC", "-cp", classpath]
    n = expected.events
    prod = subprocess.run(
        [
            *jvm,
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(n),
            "--payload-file",
            str(payloads),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            "compression.type=lz4",
            "linger.ms=20",
            "batch.size=1048576",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    result: dict[str, float] = {}
    found = re.findall(
        r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
        r"([\d.]+) ms avg latency, ([\d.]+) ms max latency",
        prod.stdout,
    )
    if found:
        _, rps, mbps, avg, _mx = found[-1]
        result.update(
            kafka_producer_records_per_s=float(rps),
            kafka_producer_mb_per_s=float(mbps),
            kafka_producer_avg_latency_ms=float(avg),
        )
    else:
        say(f"ProducerPerformance failed:\n{prod.stdout[-800:]}{prod.stderr[-800:]}")
    cons = subprocess.run(
        [
            *jvm,
            "org.apache.kafka.tools.ConsumerPerformance",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--messages",
            str(n),
            "--group",
            f"e2e-{run_id}-perf",
            "--timeout",
            "60000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    rows = [line.split(",") for line in cons.stdout.splitlines() if line.count(",") >= 9]
    if len(rows) >= 2 and rows[-1][0].strip()[:2].isdigit():
        head = [h.strip() for h in rows[0]]
        row = dict(zip(head, (c.strip() for c in rows[-1]), strict=False))
        with contextlib.suppress(KeyError, ValueError):
            result.update(
                kafka_consumer_records_per_s=float(row["nMsg.sec"]),
                kafka_consumer_mb_per_s=float(row["MB.sec"]),
                kafka_consumer_fetch_records_per_s=float(row["fetch.nMsg.sec"]),
            )
    if "kafka_consumer_records_per_s" not in result:
        say(f"ConsumerPerformance failed:\n{cons.stdout[-800:]}{cons.stderr[-800:]}")
    return result
