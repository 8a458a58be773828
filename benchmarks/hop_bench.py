"""CPU per event of the second hop's per-record work (topology `partitioned`), in process.

Usage: ``.venv/bin/python benchmarks/hop_bench.py [--receipts 60000] [--repeat 5] [--tree DIR]``

The corpus (``benchmarks/corpus.py --seed 1``) goes through a route core once, untimed; its
events are the repartition records. Then each piece of the hop runs on them with the product's
own code, no broker (a producer that queues batches in memory), the run command's collector
schedule, best of ``--repeat`` passes, in CPU µs per event:

* ``route sink``: the route stage's `Sink.write` of the events to the repartition topic
  (partitioner, batches filled);
* ``build``: those batches built as the producer's sender builds them (zstd, CRC);
* ``fetch``: the built batches read back through aiokafka's fetcher as the processor installs
  it (`pipeline.kafka.install`), 2 000 records a `getall`, as `getmany` takes them;
* ``dedupe``: `DedupeStage.process` on those records, 2 000 a batch, as one partition's (a window
  of 1.25 M messages, the default's share of 4 partitions), state topic off: the window's
  verdicts and the forwarding, its sink queueing what passes;
* ``build out``: the output batches built. A digest of the records they hold (key, value,
  headers, timestamp) is printed: equal digests, equal outputs.

``--tree DIR`` runs the code of another checkout (e.g. a worktree of main) with this script, for
before/after figures from one command each. Ends with ``hop us_per_event=<total>``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import struct
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _tree() -> Path:
    """The checkout whose code runs (``--tree``, read before anything of it is imported)."""
    args = sys.argv[1:]
    if "--tree" in args and args.index("--tree") + 1 < len(args):
        return Path(args[args.index("--tree") + 1]).resolve()
    return ROOT


sys.path.insert(0, str(_tree()))

import aiokafka.consumer.fetcher as aiokafka_fetcher  # noqa: E402
import anyio  # noqa: E402
from aiokafka.record.memory_records import MemoryRecords  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

from benchmarks.corpus import generate_corpus  # noqa: E402
from pipeline import kafka  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.core import Core, OutputRecord  # noqa: E402
from pipeline.kafka import PRODUCER_BATCH_BYTES, Sink, install, new_restorer  # noqa: E402
from pipeline.ops import tune_collector  # noqa: E402
from pipeline.runtime import DedupeStage  # noqa: E402

BATCH = 2000
PARTITIONS = 4


class Producer:
    """The producer's batch API, queueing in memory: each sent batch is kept, its future done."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.batches: list[Any] = []
        # The metadata the sink reads a topic's partition count from.
        self.client = SimpleNamespace(
            cluster=SimpleNamespace(partitions_for_topic=lambda _: set(range(PARTITIONS)))
        )

    def create_batch(self) -> Any:
        return self.make()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.batches.append(batch)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def new_sink(make_batch: Callable[[], Any], batches: list[Any]) -> Sink:
    """A sink on an in-memory producer (its batches in `batches`) whose batches are what the
    real one's would be: `make_batch` is a zstd producer's `create_batch`."""
    producer = Producer(make_batch)
    producer.batches = batches
    sink = Sink(lambda _: producer, "dlq", output_topic="out", **_compression())
    sink.producer = producer
    return sink


def _compression() -> dict[str, Any]:
    """The sink's compression argument, where it has one (it builds its own batches)."""
    import inspect

    return {"compression": "zstd"} if "compression" in inspect.signature(Sink).parameters else {}


def built(batches: list[Any]) -> list[bytes]:
    """The batches as the broker stores them: built, numbered from offset 0 on."""
    out: list[bytes] = []
    base = 0
    for batch in batches:
        raw = bytearray(batch._build())
        struct.pack_into(">q", raw, 0, base)
        base += batch.record_count()
        out.append(bytes(raw))
    return out


def cpu(
    run: Callable[[Any], Any], repeat: int, events: int, setup: Callable[[], Any] = lambda: None
) -> tuple[float, Any]:
    """(best CPU µs per event of `run(setup())` over `repeat` passes, `setup` untimed; the last
    pass's result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        given = setup()
        gc.collect()
        started = time.process_time()
        result = run(given)
        best = min(best, time.process_time() - started)
    return best / events * 1e6, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receipts", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose code runs")
    args = parser.parse_args()
    install()
    records, _ = generate_corpus(1, args.receipts)
    core: Core[Any] = Core(None)
    events: list[OutputRecord] = []
    for i in range(0, len(records), 1000):
        events += core.process(records[i : i + 1000]).outputs
    n = len(events)
    tune_collector()
    loop = asyncio.new_event_loop()
    settings = Settings(output_topic="out", state_dir="", no_state=True)

    async def clients() -> tuple[Any, DedupeStage]:
        from aiokafka import AIOKafkaProducer

        # zstd as the product compresses (at its level, where the tree has one).
        compression = getattr(kafka, "compression_options", lambda _: {"compression_type": "zstd"})
        made = AIOKafkaProducer(
            **compression(settings), enable_idempotence=True, max_batch_size=PRODUCER_BATCH_BYTES
        )
        stage = DedupeStage(
            settings,
            new_sink(made.create_batch, []),
            new_restorer(settings),
            PARTITIONS,
            anyio.Event(),
        )
        return made.create_batch, stage

    make_batch, dedupe = loop.run_until_complete(clients())
    # Those clients are never started: no "unclosed" report when they go.
    loop.set_exception_handler(lambda *_: None)
    figures: dict[str, float] = {}

    def route(_: Any = None) -> list[Any]:
        batches: list[Any] = []
        sink = new_sink(make_batch, batches)
        loop.run_until_complete(sink.write("out.by-message", events, []))
        return batches

    figures["route sink"], batches = cpu(route, args.repeat, n)
    figures["build"], _ = cpu(built, args.repeat, n, route)
    # One partition's log: the batches of all partitions, one after the other.
    log = b"".join(built(batches))
    tp = TopicPartition("out.by-message", 0)

    def fetch_all(data: bytes) -> list[Any]:
        part = aiokafka_fetcher.PartitionRecords(
            tp, MemoryRecords(data), None, 0, None, None, True, 1
        )
        result = aiokafka_fetcher.FetchResult(
            tp, partition_records=part, assignment=None, backoff=0
        )
        result.check_assignment = lambda _: True
        result._update_position = lambda: None
        fetched: list[Any] = []
        while result.has_more():
            fetched += result.getall(BATCH)
        return fetched

    figures["fetch"], fetched = cpu(lambda _: fetch_all(log), args.repeat, n)
    assert len(fetched) == n, (len(fetched), n)

    # Fresh windows, made before the passes time anything (one per pass).
    windows: list[Any] = []

    def process(_: Any = None) -> list[Any]:
        out: list[Any] = []
        dedupe.sink = new_sink(make_batch, out)
        dedupe.windows[0] = windows.pop()
        for i in range(0, n, BATCH):
            loop.run_until_complete(dedupe.process({tp: fetched[i : i + BATCH]}))
        return out

    windows[:] = [dedupe.new_window() for _ in range(args.repeat)]
    figures["dedupe"], _ = cpu(process, args.repeat, n)
    windows[:] = [dedupe.new_window() for _ in range(args.repeat)]
    figures["build out"], logs = cpu(built, args.repeat, n, process)
    digest = hashlib.sha256()
    forwarded = 0
    for m in fetch_all(b"".join(logs)):
        forwarded += 1
        digest.update(repr((m.key, m.value, list(m.headers), m.timestamp)).encode())
    total = sum(figures.values())
    print(f"tree        {args.tree}")
    print(f"events      {n} repartition records of {len(log) // n} bytes (zstd), {forwarded} pass")
    for name, us in figures.items():
        print(f"  {name:<12}{us:6.2f} CPU µs per event")
    print(f"output      {forwarded} records, digest {digest.hexdigest()[:16]}")
    print(f"hop us_per_event={total:.2f}")
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="Unclosed AIOKafka")
    sys.exit(main())
