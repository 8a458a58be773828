"""Transactional partition writers (pipeline/kafka/_transactions.py) against the real broker:
records and consumed offsets commit together, a new owner fences the old one, and nothing a
fenced or failed writer sent reaches a read_committed consumer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from pipeline.kafka import PartitionLost, PartitionWriters, transactional_id

from .conftest import committed, create_topics, drain, unique

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


class Setup:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.group = unique("txn-group")
        self.source = unique("txn-by-message")  # the repartition topic the offsets are for
        self.out = unique("txn-out")

    async def create(self) -> None:
        await create_topics(self.bootstrap, {self.source: 2, self.out: 2})

    def writers(self) -> PartitionWriters:
        return PartitionWriters(self.group, self.out, {"bootstrap_servers": self.bootstrap})

    def offsets(self, partition: int, offset: int) -> dict[TopicPartition, int]:
        return {TopicPartition(self.source, partition): offset}

    async def visible(self, partition: int | None = None) -> list[bytes]:
        """Values a read_committed consumer sees (of one output partition, or all)."""
        records = await drain(self.bootstrap, self.out, isolation_level="read_committed")
        return [r.value for r in records if partition is None or r.partition == partition]

    async def written(self) -> int:
        """Records physically in the output log, aborted ones included (control records not)."""
        return len(await drain(self.bootstrap, self.out))


def records(*values: bytes) -> list[tuple[bytes, bytes, Sequence[tuple[str, bytes]], int]]:
    return [(b"key:" + v, v, [("status", b"SENT")], 1_700_000_000_000) for v in values]


@pytest.fixture
async def setup(kafka_bootstrap: str) -> Setup:
    s = Setup(kafka_bootstrap)
    await s.create()
    return s


async def test_write_commits_records_and_offsets_together(setup: Setup) -> None:
    w = setup.writers()
    await w.open(0)
    await w.open(1)
    assert w.partitions == {0, 1}
    many = [b"v%d" % i for i in range(5000)]  # several producer batches in one transaction
    await w.write(0, records(*many), setup.offsets(0, 17), setup.group)
    await w.write(1, records(b"b"), setup.offsets(1, 3), setup.group)
    await w.close_all()
    assert await setup.visible(0) == many
    assert await setup.visible(1) == [b"b"]
    assert await committed(setup.bootstrap, setup.group, setup.source) == {0: 17, 1: 3}


async def test_a_new_owner_fences_the_old_one(setup: Setup) -> None:
    old, new = setup.writers(), setup.writers()
    await old.open(0)
    await old.write(0, records(b"before"), setup.offsets(0, 1), setup.group)
    await new.open(0)  # the new owner of partition 0: fences the old one
    with pytest.raises(PartitionLost) as lost:
        await old.write(0, records(b"zombie"), setup.offsets(0, 99), setup.group)
    assert lost.value.partition == 0 and old.partitions == frozenset()
    await new.write(0, records(b"after"), setup.offsets(0, 2), setup.group)
    await new.close_all()
    assert await setup.visible() == [b"before", b"after"]
    assert await committed(setup.bootstrap, setup.group, setup.source) == {0: 2}


async def test_fenced_in_the_middle_of_a_transaction(setup: Setup) -> None:
    """The old owner's records are acknowledged inside its open transaction when the new owner
    starts: they stay invisible, and its offsets are not committed."""
    old, new = setup.writers(), setup.writers()
    await old.open(0)
    producer: Any = old._producers[0]
    send_offsets = producer.send_offsets_to_transaction

    async def fenced_first(offsets: Any, group_id: str) -> None:
        await new.open(0)
        await send_offsets(offsets, group_id)

    producer.send_offsets_to_transaction = fenced_first
    with pytest.raises(PartitionLost):
        await old.write(0, records(b"z1", b"z2"), setup.offsets(0, 50), setup.group)
    assert await setup.written() == 2  # they did reach the log ...
    assert await setup.visible() == []  # ... aborted
    await new.write(0, records(b"after"), setup.offsets(0, 5), setup.group)
    await new.close_all()
    assert await setup.visible() == [b"after"]
    assert await committed(setup.bootstrap, setup.group, setup.source) == {0: 5}


async def test_a_failed_write_is_aborted_and_the_next_one_commits(setup: Setup) -> None:
    w = setup.writers()
    await w.open(1)
    # A record over the topic's max.message.bytes (1 MiB by default) fails the transaction.
    huge = b"x" * (2 * 1024 * 1024)
    with pytest.raises(KafkaError):
        await w.write(1, records(b"lost", huge), setup.offsets(1, 10), setup.group)
    assert w.partitions == frozenset()  # closed by the failure
    await w.open(1)
    await w.write(1, records(b"kept"), setup.offsets(1, 11), setup.group)
    await w.close_all()
    assert await setup.visible() == [b"kept"]
    assert await committed(setup.bootstrap, setup.group, setup.source) == {1: 11}


async def test_writing_a_partition_not_open_is_refused(setup: Setup) -> None:
    w = setup.writers()
    with pytest.raises(ValueError, match="not open"):
        await w.write(0, records(b"a"), {}, setup.group)


def test_transactional_id() -> None:
    assert transactional_id("g", "sms-receipts", 4) == "g.dedupe.sms-receipts.4"
