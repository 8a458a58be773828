"""The straightforward baseline (benchmarks/baseline/) in a simple aiokafka loop.

What a competent developer writes first: `getmany` → `Baseline.process` (json, dicts,
phonenumbers, one record at a time) → one `producer.send` per output event (aiokafka's default
partitioner hashes each key) and per dead letter → wait for every send → commit. Same delivery
rule as the processor (commit only after every output is acknowledged; idempotent producer,
acks=all, lz4 like the processor so the broker stores the same bytes); otherwise aiokafka's
defaults (16 KiB batches, no linger, default fetch sizes) and the default asyncio loop.

    python benchmarks/baseline_kafka.py --bootstrap-servers B --input-topics T[,T2] \
        --output-topic O --dead-letter-topic D --group-id G [--first-file F]

Stops on SIGTERM/SIGINT after finishing the batch in hand.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from benchmarks import contender_cli  # noqa: E402
from benchmarks.baseline import Baseline  # noqa: E402
from benchmarks.contender_cli import acked_then_commit  # noqa: E402
from pipeline.core import InputRecord  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    stopping = contender_cli.stop_on_signals()
    consumer = AIOKafkaConsumer(
        *args.input_topics.split(","),
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        compression_type="lz4",
    )
    await producer.start()
    await consumer.start()
    baseline = Baseline()
    first = True
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            if not batches:
                continue
            if first and args.first_file:
                with open(args.first_file, "a") as f:
                    f.write(f"{time.time():.6f}\n")
            first = False
            records = [
                InputRecord(
                    m.topic, m.partition, m.offset, m.timestamp, list(m.headers), m.value or b""
                )
                for messages in batches.values()
                for m in messages
            ]
            outputs, dead = baseline.process(records)
            futures: list[Any] = []
            for out in outputs:
                futures.append(
                    await producer.send(
                        args.output_topic, out.value, key=out.key, headers=out.headers
                    )
                )
            for record, error_class in dead:
                headers = [
                    *record.headers,
                    ("error.class", error_class.encode()),
                    ("source.topic", record.topic.encode()),
                    ("source.partition", str(record.partition).encode()),
                    ("source.offset", str(record.offset).encode()),
                ]
                futures.append(
                    await producer.send(args.dead_letter_topic, record.value, headers=headers)
                )
            await acked_then_commit(consumer, futures, batches)
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = contender_cli.parser(__doc__)
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
