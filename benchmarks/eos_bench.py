"""Cost of ``--exactly-once`` writes: transactional partition writers vs the idempotent producer.

Usage: ``.venv/bin/python benchmarks/eos_bench.py [--rounds 25] [--batch 2000] [--partitions 4]
[--repeat 3]``

A local single-node broker (tools.broker.LocalKafka; or ``KAFKA_BOOTSTRAP_SERVERS``). Both
contenders write the same records, as the dedupe stage would: per round, one batch of
``--batch`` event-sized records (key, ~330-byte JSON value, three headers) to each of
``--partitions`` output partitions, and the consumed offsets of the repartition topic committed
for the group once the records are acknowledged.

* idempotent: one producer (acks=all, idempotence, zstd), batches via create_batch/send_batch,
  every future of the round gathered, then one offset commit (consumer.commit) per round.
* transactional: pipeline/kafka/_transactions.py's PartitionWriters, one producer per partition;
  per round one transaction per partition (records, send_offsets_to_transaction, commit), the
  partitions' transactions run concurrently.

Figures: records/s (wall) and client CPU µs per record (time.process_time of this process; the
broker's CPU is not included), best and median of ``--repeat`` alternated runs. Checked: a
read_committed consumer sees exactly the records written, and the group's committed offsets are
the last round's. An untimed first run of each warms the broker up. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from pipeline.kafka import PartitionWriters  # noqa: E402
from tools.broker import LocalKafka, kafka_bootstrap_from_env  # noqa: E402

VALUE = (
    b'{"event_id":"%032x","provider":"uspeedo","message_key":"acct-1:%016x",'
    b'"status":"DELIVERED","raw_status":"DELIVRD","occurred_at":"2026-12-01T21:00:00.000Z",'
    b'"recipient":"+447700900123","error_code":null,"source":{"topic":"sms-receipts-raw",'
    b'"partition":3,"offset":123456789},"ingested_at":"2026-12-01T21:00:00.123Z"}'
)


class CheckFailed(Exception):
    pass


def make_records(n: int, seed: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]], int]]:
    out = []
    for i in range(n):
        k = seed * 10_000_000 + i
        out.append(
            (
                b"uspeedo:acct-1:%016x" % k,
                VALUE % (k, k),
                [("event_id", b"%032x" % k), ("provider", b"uspeedo"), ("status", b"DELIVERED")],
                1_764_622_800_000 + i,
            )
        )
    return out


async def create(bootstrap: str, topics: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()])
    finally:
        await admin.close()
    await asyncio.sleep(1.0)  # leaders elected on a single local broker


async def idempotent(
    bootstrap: str, out: str, source: str, group: str, rounds: list[list[Any]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="zstd",
        max_batch_size=1024 * 1024,
    )
    committer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await producer.start()
    await committer.start()
    committer.assign([TopicPartition(source, p) for p in range(len(rounds[0]))])
    try:
        for r, per_partition in enumerate(rounds):
            futures = []
            for p, records in enumerate(per_partition):
                batch = producer.create_batch()
                for key, value, headers, stamp in records:
                    while (
                        batch.append(key=key, value=value, timestamp=stamp, headers=headers) is None
                    ):
                        futures.append(await producer.send_batch(batch, out, partition=p))
                        batch = producer.create_batch()
                futures.append(await producer.send_batch(batch, out, partition=p))
            await asyncio.gather(*futures)
            await committer.commit(
                {TopicPartition(source, p): r + 1 for p in range(len(per_partition))}
            )
    finally:
        await committer.stop()
        await producer.stop()


async def transactional(
    bootstrap: str, out: str, source: str, group: str, rounds: list[list[Any]]
) -> None:
    writers = PartitionWriters(
        group, out, {"bootstrap_servers": bootstrap, "compression_type": "zstd"}
    )
    partitions = range(len(rounds[0]))
    for p in partitions:
        await writers.open(p)
    try:
        for r, per_partition in enumerate(rounds):
            await asyncio.gather(
                *(
                    writers.write(p, per_partition[p], {TopicPartition(source, p): r + 1}, group)
                    for p in partitions
                )
            )
    finally:
        await writers.close_all()


async def check(
    bootstrap: str, out: str, source: str, group: str, expected: int, rounds: int, partitions: int
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(out, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        idle = time.monotonic()
        while seen < expected and time.monotonic() - idle < 10:
            got = await consumer.getmany(timeout_ms=200, max_records=50_000)
            if got:
                idle = time.monotonic()
            seen += sum(map(len, got.values()))
        if seen != expected:
            raise CheckFailed(f"{out}: read_committed sees {seen} records, wrote {expected}")
        for p in range(partitions):
            offset = await consumer.committed(TopicPartition(source, p))
            if offset != rounds:
                raise CheckFailed(f"{group}: committed {offset} for {source}[{p}], not {rounds}")
    finally:
        await consumer.stop()


async def bench(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    rounds = [
        [make_records(args.batch, r * args.partitions + p) for p in range(args.partitions)]
        for r in range(args.rounds)
    ]
    total = args.rounds * args.partitions * args.batch
    results: dict[str, list[tuple[float, float]]] = {"idempotent": [], "transactional": []}
    contenders = {"idempotent": idempotent, "transactional": transactional}
    for rep in range(-1, args.repeat):  # run -1 warms up the broker (offsets topic, ...)
        for name, run in contenders.items():
            tag = f"eos-{name}-{rep}-{uuid.uuid4().hex[:8]}"
            out, source, group = f"{tag}-out", f"{tag}-by-message", f"{tag}-group"
            await create(bootstrap, {out: args.partitions, source: args.partitions})
            c0, t0 = time.process_time(), time.perf_counter()
            await run(bootstrap, out, source, group, rounds)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            await check(bootstrap, out, source, group, total, args.rounds, args.partitions)
            if rep < 0:
                continue
            results[name].append((wall, cpu))
            print(
                f"  {name:13s} run {rep + 1}: {total / wall:10,.0f} records/s wall, "
                f"{cpu / total * 1e6:5.2f} CPU µs/record ({wall:.2f} s wall, {cpu:.2f} CPU-s)",
                flush=True,
            )
    summary: dict[str, Any] = {"records": total}
    for name, runs in results.items():
        rates = [total / w for w, _ in runs]
        cpus = [c / total * 1e6 for _, c in runs]
        summary[name] = {
            "records_per_s_best": round(max(rates)),
            "records_per_s_median": round(statistics.median(rates)),
            "cpu_us_per_record_best": round(min(cpus), 2),
            "cpu_us_per_record_median": round(statistics.median(cpus), 2),
        }
    idem, txn = summary["idempotent"], summary["transactional"]
    summary["txn_over_idempotent_rate"] = round(
        txn["records_per_s_median"] / idem["records_per_s_median"], 3
    )
    summary["txn_over_idempotent_cpu"] = round(
        txn["cpu_us_per_record_median"] / idem["cpu_us_per_record_median"], 3
    )
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--batch", type=int, default=2000, help="records per partition per round")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    external = kafka_bootstrap_from_env()
    broker = None
    if external:
        bootstrap = external
    else:
        broker = LocalKafka()
        bootstrap = broker.start()
    print(
        f"eos bench: {args.rounds} rounds x {args.partitions} partitions x {args.batch} "
        f"records, repeat {args.repeat}, broker {bootstrap}",
        flush=True,
    )
    try:
        summary = asyncio.run(bench(bootstrap, args))
    except CheckFailed as exc:
        print(f"CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.stop()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
