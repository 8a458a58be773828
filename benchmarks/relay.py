"""A bare aiokafka relay: the ceiling of this client on this machine for our job's traffic shape.

It consumes the raw records exactly as the processor does (same consumer group mechanics, same
fetch sizes, `getmany`), does no processing at all, and produces the same NUMBER of records of
the same SIZE as the processor's output: it cycles through a pool of real output records (key,
value, headers; written by benchmarks/e2e_bench.py from the expected output of the corpus, so
sizes and lz4 compressibility match ours) and emits ``events / records`` of them per input
record (integer arithmetic, so the first ``records`` inputs yield exactly ``events`` outputs).
Producer settings are the processor's (idempotent, acks=all, 1 MiB batches, the batch API, and
its default compression, compression level and linger, read from `pipeline.config.Settings`;
`--compression`, `--compression-level` and `--linger-ms` set others, e.g. the lz4 and 20 ms it
used before those defaults changed); each output goes to the input record's partition (no key
hashing: a relay has nothing to key by). Offsets are committed after every output of the batch
is acknowledged.

The input record's timestamp is carried in front of the key (``b"<ms>|<key>"``) so the
benchmark can measure latency from input timestamp to output append.

    python benchmarks/relay.py --bootstrap-servers B --input-topics T[,T2] --output-topic O \
        --group-id G --pool POOL.json --events E --records N [--first-file F]

Stops on SIGTERM/SIGINT after finishing the batch in hand.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import contender_cli  # noqa: E402
from benchmarks.contender_cli import acked_then_commit  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.kafka import compression_options  # noqa: E402

#: The processor's defaults, so the relay stays its yardstick when they change.
DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(Settings)}


def load_pool(path: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """The output records to cycle through: a JSON list of [key, value, [[name, value]...]]."""
    with open(path, "rb") as f:
        raw = orjson.loads(f.read())
    return [(k.encode(), v.encode(), [(n, hv.encode()) for n, hv in h]) for k, v, h in raw]


def note_first(path: str | None) -> None:
    if path:
        with open(path, "a") as f:
            f.write(f"{time.time():.6f}\n")


async def relay(args: argparse.Namespace) -> None:
    pool = load_pool(args.pool)
    events, records = args.events, args.records
    stopping = contender_cli.stop_on_signals()
    consumer = AIOKafkaConsumer(
        *args.input_topics.split(","),
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        **compression_options(
            Settings(compression=args.compression, compression_level=args.compression_level)
        ),
        linger_ms=args.linger_ms,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    await consumer.start()
    out = args.output_topic
    n_out = len(await producer.partitions_for(out))
    seen = 0  # input records relayed so far
    cursor = 0  # position in the pool
    first = True
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            if not batches:
                continue
            if first:
                note_first(args.first_file)
                first = False
            futures: list[Any] = []
            for tp, messages in batches.items():
                partition = tp.partition % n_out
                batch = producer.create_batch()
                for m in messages:
                    count = (seen + 1) * events // records - seen * events // records
                    seen += 1
                    prefix = b"%d|" % m.timestamp
                    for _ in range(count):
                        key, value, headers = pool[cursor]
                        cursor = (cursor + 1) % len(pool)
                        key = prefix + key
                        while (
                            batch.append(key=key, value=value, timestamp=None, headers=headers)
                            is None
                        ):
                            futures.append(
                                await producer.send_batch(batch, out, partition=partition)
                            )
                            batch = producer.create_batch()
                if batch.record_count():
                    futures.append(await producer.send_batch(batch, out, partition=partition))
            await acked_then_commit(consumer, futures, batches)
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = contender_cli.parser(__doc__, dead_letters=False)
    parser.add_argument("--pool", required=True, help="JSON file of output records to cycle")
    parser.add_argument("--events", type=int, required=True, help="outputs per --records inputs")
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--compression", default=DEFAULTS["compression"], help="%(default)s")
    parser.add_argument(
        "--compression-level", type=int, default=DEFAULTS["compression_level"], help="%(default)s"
    )
    parser.add_argument("--linger-ms", type=int, default=DEFAULTS["linger_ms"], help="%(default)s")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(relay(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(relay(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
