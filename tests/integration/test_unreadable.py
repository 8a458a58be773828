"""Records aiokafka cannot parse: dead-lettered with what can be recovered,
and consumption goes on after them, through a real broker."""

from __future__ import annotations

import struct
import time

import aiokafka.consumer.fetcher as aiokafka_fetcher
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import ConsumerRecord

from pipeline.core import InputRecord
from pipeline.kafka import Unreadable, input_records, install
from pipeline.kafka._fetch import _PartitionRecords, _Records

from .conftest import create_topics, new_producer, send, unique
from .hostile import RawKey, raw_header_keys

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


def stream(topic: str, stamp: int) -> list[InputRecord]:
    bad = [("provider", b"tencent"), (RawKey(b"acc\xffount"), b"a1"), ("tz", b"UTC")]
    return [
        InputRecord(topic, 0, i, stamp + i, headers, b"body-%d" % i)
        for i, headers in enumerate([[("ok", b"0")], bad, [], [("ok", b"3")], bad, []])
    ]


async def read_all(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        got: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            got += batches.get(tp, [])
        return got
    finally:
        await consumer.stop()


@pytest.mark.parametrize("compression", [None, "gzip"])
async def test_non_utf8_header_key_is_dead_lettered_and_reading_goes_on(
    kafka_bootstrap: str, compression: str | None
) -> None:
    install()
    topic = unique("unreadable")
    await create_topics(kafka_bootstrap, {topic: 1})
    records = stream(topic, int(time.time() * 1000))
    producer = new_producer(kafka_bootstrap)
    producer._compression_type = compression  # one batch of all six, compressed or not
    with raw_header_keys():
        await producer.start()
        try:
            await send(producer, records)
        finally:
            await producer.stop()

    got = await read_all(kafka_bootstrap, topic, len(records))
    assert [m.offset for m in got] == list(range(6))  # nothing skipped, nothing twice
    assert [type(m) is Unreadable for m in got] == [False, True, False, False, True, False]
    for m, r in zip(got, records, strict=True):
        assert (m.value, m.timestamp) == (r.value, r.timestamp_ms)
    bad = got[1]
    assert bad.headers == [("provider", b"tencent"), ("acc\ufffdount", b"a1"), ("tz", b"UTC")]
    assert bad.error == "header key b'acc\\xffount' is not UTF-8"

    readable, dead = input_records({TopicPartition(topic, 0): got}, 1000)
    assert [r.offset for r in readable] == [0, 2, 3, 5]
    assert [dict(d.headers)["source.offset"] for d in dead] == [b"1", b"4"]
    assert {d.error_class for d in dead} == {"UnreadableRecord"}
    assert dead[0].value == b"body-1"
    assert dict(dead[0].headers)["error.message"] == b"header key b'acc\\xffount' is not UTF-8"


def test_batch_past_repair_is_one_dead_letter_naming_its_offsets() -> None:
    builder = _DefaultRecordBatchBuilderPy(2, 0, 0, -1, -1, 0, 1 << 20)
    for i in range(3):
        builder.append(i, 1000 + i, None, b"v%d" % i, [])
    raw = bytearray(builder.build())
    raw[70] = 0x12  # the second record claims 9 bytes, holds 8; the batch otherwise as sent
    struct.pack_into(">q", raw, 0, 40)  # base offset, as the broker assigns it
    struct.pack_into(">I", raw, 17, calc_crc32c(raw[21:]))  # a valid CRC
    tp = TopicPartition("t", 0)
    records = _PartitionRecords(tp, _Records(bytes(raw)), [], 40, None, None, True, 0)
    got = list(records)
    assert [m.offset for m in got] == [40, 42]
    assert [type(m) is Unreadable for m in got] == [False, True]
    assert got[1].error.startswith("record batch of t partition 0, offsets 41 to 42")
    assert records.next_fetch_offset == 43
    assert aiokafka_fetcher.PartitionRecords is _PartitionRecords  # installed by _fetch
