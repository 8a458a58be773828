"""The same job in Quix Streams: the best-known Python stream-processing library, as its peer.

One `StreamingDataFrame` per input topic: `apply(expand=True)` turns a raw record into its
output rows, `set_headers` gives each row its headers, and `to_topic` routes it to the output
or the dead-letter topic with the row's key. The per-record work is our own core's decoders
(`pipeline.core.Decoder`: routing, decode, normalise) and msgspec encoding, so the comparison
measures the framework around the same work, not two implementations of the contract. Dedupe is
a plain in-memory dict with the window's rules (per message: the set of emitted statuses and the
highest rank; a repeated status is a duplicate, a lower rank after a higher one is stale). Quix's
own state store is keyed by the *message key* of the record being processed and so would need a
`group_by` re-keying (a round trip through a repartition topic) plus RocksDB writes per event;
the in-memory dict is the lighter, stronger choice for a peer.

Quix Streams' defaults otherwise (its recommended settings): at-least-once processing guarantee,
a checkpoint commit every 5 s, confluent-kafka/librdkafka clients with Quix's defaults.

    python benchmarks/peer_quix.py --bootstrap-servers B --input-topics T[,T2] \
        --output-topic O --dead-letter-topic D --group-id G [--first-file F]

Stops on SIGTERM/SIGINT (Quix's own graceful shutdown).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from quixstreams import Application, message_context  # noqa: E402
from quixstreams.models.serializers import Serializer  # noqa: E402

from benchmarks import contender_cli  # noqa: E402
from pipeline.core import Decoder, InputRecord, dead_letter  # noqa: E402
from pipeline.errors import DecodeError, NotReceipts  # noqa: E402
from schemas import RANK, STATUSES  # noqa: E402

OUT, DEAD = 0, 1
BIT = {s: 1 << i for i, s in enumerate(STATUSES)}


class RowValue(Serializer):  # type: ignore[misc]
    """Rows are (route, key, value bytes, headers): the topic gets the value bytes."""

    def __call__(self, value: Any, ctx: Any) -> bytes:
        return value[2]  # type: ignore[no-any-return]


class RowKey(Serializer):  # type: ignore[misc]
    def __call__(self, value: Any, ctx: Any) -> bytes | None:
        return value  # type: ignore[no-any-return]


def build(args: argparse.Namespace) -> Application:
    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group_id,
        auto_offset_reset="earliest",
        loglevel="WARNING",
    )
    out = app.topic(args.output_topic, key_serializer=RowKey(), value_serializer=RowValue())
    dlq = app.topic(args.dead_letter_topic, key_serializer=RowKey(), value_serializer=RowValue())
    decode = Decoder().decode
    encode = msgspec.json.Encoder().encode
    window: dict[bytes, list[int]] = {}  # b"provider:message_key" -> [emitted statuses, top rank]
    first = [args.first_file]

    def process(value: bytes | None, key: Any, timestamp: int, headers: Any) -> list[Any]:
        if first[0]:
            with open(first[0], "a") as f:
                f.write(f"{time.time():.6f}\n")
            first[0] = None
        ctx = message_context()
        record = InputRecord(
            ctx.topic, ctx.partition, ctx.offset, timestamp, list(headers or ()), value or b""
        )
        try:
            events = decode(record)
        except DecodeError as exc:
            dead = dead_letter(record, exc)
            return [(DEAD, None, dead.value, dead.headers)]
        except NotReceipts:
            return []
        rows = []
        for event in events:
            msg_key = f"{event.provider}:{event.message_key}".encode()
            status = event.status
            bit, rank = BIT[status], RANK[status]
            state = window.get(msg_key)
            if state is None:
                window[msg_key] = [bit, rank]
            elif state[0] & bit:
                continue  # duplicate
            elif rank < state[1]:
                continue  # stale
            else:
                state[0] |= bit
                if rank > state[1]:
                    state[1] = rank
            rows.append(
                (
                    OUT,
                    msg_key,
                    encode(event),
                    [
                        ("event_id", event.event_id.encode()),
                        ("provider", event.provider.encode()),
                        ("status", status.encode()),
                    ],
                )
            )
        return rows

    for name in args.input_topics.split(","):
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(process, expand=True, metadata=True)
        sdf = sdf.set_headers(lambda value, key, timestamp, headers: value[3])
        sdf.to_topic(
            lambda value, key, timestamp, headers: out if value[0] == OUT else dlq,
            key=lambda value: value[1],
        )
    return app


def main(argv: list[str] | None = None) -> int:
    parser = contender_cli.parser(__doc__)
    args = parser.parse_args(argv)
    build(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
