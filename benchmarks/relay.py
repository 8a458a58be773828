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

With ``--hop-topic`` it is two relays in one process, as topology `partitioned` is two stages:
the first writes the outputs to that topic (on the input record's partition), the second reads
them back (with the processor's fetcher) and writes each as fetched to the output topic (on its
partition). That is the Kafka work of a second hop with nothing computed.

With ``--state-topic`` it also writes, beside each output, one record of ``--state-pool`` (real
state records of the same corpus) to that topic, on the output's partition: what writing the
message-state topic costs the client with nothing computed (our processor writes one state
record per event it emits).

The input record's timestamp is carried in front of the key (``b"<ms>|<key>"``) so the
benchmark can measure latency from input timestamp to output append.

    python benchmarks/relay.py --bootstrap-servers B --input-topics T[,T2] --output-topic O \
        --group-id G --pool POOL.json --events E --records N [--first-file F]
        [--hop-topic H] [--state-topic S --state-pool STATES.json]

Stops on SIGTERM/SIGINT after finishing the batch in hand.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, cycle, islice
from operator import attrgetter
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
from benchmarks.e2e.expected import PoolRecord  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.kafka import compression_options, install  # noqa: E402

#: The processor's defaults, so the relay stays its yardstick when they change.
DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(Settings)}


#: What a relay stage writes for a partition's batch of consumed records.
Outputs = Callable[[list[Any]], Iterable[PoolRecord]]
#: A fetched record as it is written again (its headers are the fetcher's own list).
_AS_FETCHED = attrgetter("key", "value", "headers")


def load_pool(path: str) -> list[PoolRecord]:
    """The output records to cycle through: a JSON list of [key, value, [[name, value]...]]."""
    with open(path, "rb") as f:
        raw = orjson.loads(f.read())
    return [(k.encode(), v.encode(), [(n, hv.encode()) for n, hv in h]) for k, v, h in raw]


def note_first(path: str | None) -> None:
    if path:
        with open(path, "a") as f:
            f.write(f"{time.time():.6f}\n")


def _consumer(args: argparse.Namespace, topics: list[str], group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=args.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )


async def _send(
    producer: AIOKafkaProducer,
    records: Iterable[PoolRecord],
    topic: str,
    partition: int,
    futures: list[Any],
) -> int:
    """Write `records` to one partition in batches (their sends' futures into `futures`); how
    many there were."""
    batch = producer.create_batch()
    count = 0
    for key, value, headers in records:
        while batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
        count += 1
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return count


async def _forward(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    out: str,
    outputs: Outputs,
    stopping: asyncio.Event,
    first_file: str | None = None,
    states: tuple[str, Iterator[PoolRecord]] | None = None,
) -> None:
    """Consume, write the `outputs` of each partition's records on that partition (and, with
    `states` (topic, records), as many state records there), commit once every write of the
    batch is acknowledged; until `stopping`."""
    n_out = len(await producer.partitions_for(out))
    if states and len(await producer.partitions_for(states[0])) != n_out:
        raise SystemExit(f"--state-topic {states[0]}: not partitioned like {out}")
    first = True
    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=100, max_records=2000)
        if not batches:
            continue
        if first:
            note_first(first_file)
            first = False
        futures: list[Any] = []
        for tp, messages in batches.items():
            partition = tp.partition % n_out
            written = await _send(producer, outputs(messages), out, partition, futures)
            if states:
                topic, records = states
                await _send(producer, islice(records, written), topic, partition, futures)
        await acked_then_commit(consumer, futures, batches)


async def relay(args: argparse.Namespace) -> None:
    pool = load_pool(args.pool)
    state_topic = args.state_topic
    states = (state_topic, cycle(load_pool(args.state_pool))) if state_topic else None
    events, records = args.events, args.records
    seen = cursor = 0  # input records relayed so far; position in the pool

    def from_pool(m: Any) -> list[PoolRecord]:
        """The outputs of one input record: the next pool records, its timestamp in each key."""
        nonlocal seen, cursor
        count = (seen + 1) * events // records - seen * events // records
        seen += 1
        prefix = b"%d|" % m.timestamp
        out = []
        for _ in range(count):
            key, value, headers = pool[cursor]
            cursor = (cursor + 1) % len(pool)
            out.append((prefix + key, value, headers))
        return out

    def relayed(messages: list[Any]) -> Iterable[PoolRecord]:
        return chain.from_iterable(map(from_pool, messages))

    def as_fetched(messages: list[Any]) -> Iterable[PoolRecord]:
        return map(_AS_FETCHED, messages)

    stopping = contender_cli.stop_on_signals()
    if args.hop_topic:
        install()  # the processor's fetcher, as its second hop reads with it
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
    consumers = [_consumer(args, args.input_topics.split(","), args.group_id)]
    hops = [args.hop_topic] if args.hop_topic else []
    consumers += [_consumer(args, hops, f"{args.group_id}-hop") for _ in hops]
    await producer.start()
    for consumer in consumers:
        await consumer.start()
    try:
        first = _forward(
            consumers[0],
            producer,
            args.hop_topic or args.output_topic,
            relayed,
            stopping,
            args.first_file,
            states,
        )
        second = [
            _forward(c, producer, args.output_topic, as_fetched, stopping) for c in consumers[1:]
        ]
        await asyncio.gather(first, *second)
    finally:
        for consumer in consumers:
            await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = contender_cli.parser(__doc__, dead_letters=False)
    parser.add_argument("--pool", required=True, help="JSON file of output records to cycle")
    parser.add_argument("--events", type=int, required=True, help="outputs per --records inputs")
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--state-topic", help="also write a state record per output here")
    parser.add_argument("--state-pool", help="JSON file of state records to cycle")
    parser.add_argument(
        "--hop-topic", help="write the outputs here, then read them back and write them out"
    )
    parser.add_argument("--compression", default=DEFAULTS["compression"], help="%(default)s")
    parser.add_argument(
        "--compression-level", type=int, default=DEFAULTS["compression_level"], help="%(default)s"
    )
    parser.add_argument("--linger-ms", type=int, default=DEFAULTS["linger_ms"], help="%(default)s")
    args = parser.parse_args(argv)
    if bool(args.state_topic) != bool(args.state_pool):
        parser.error("--state-topic and --state-pool go together")
    try:
        import uvloop

        uvloop.run(relay(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(relay(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
