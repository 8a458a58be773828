"""Transactional writers for ``--exactly-once``: one producer per owned window partition.

aiokafka does not implement KIP-447 (consumer-group fencing of transactions: the consumer's
group metadata passed to ``send_offsets_to_transaction``), so fencing is by ``transactional.id``
as in Kafka Streams' first exactly-once mode and Faust: partition p of the output topic is
written only by the producer with id ``<group>.dedupe.<output topic>.<p>``. Whoever owns p
opens that producer; starting it (``InitProducerId``) bumps the id's epoch, which fences the
previous owner: the broker refuses its produce requests, offset commits and transaction ends
from then on, and aborts its open transaction, so a zombie (a member frozen past its session
timeout) can never make a late write visible to ``read_committed`` readers.

Each :meth:`PartitionWriters.write` is one transaction: the records go to output partition p
(in batches built with ``create_batch``/``send_batch``, which aiokafka supports inside a
transaction), the consumed repartition offsets are added with ``send_offsets_to_transaction``,
and the transaction is committed; records and offsets become visible together or not at all.
A fenced producer raises :class:`PartitionLost` (the caller drops partition p: another member
owns it); any other failure aborts the transaction and re-raises, nothing of it visible, and
closes the producer (reopen it to retry).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)

from ..errors import SettingProblem
from ._sink import PRODUCER_BATCH_BYTES, queue

__all__ = ["PartitionLost", "PartitionWriters", "transactional_id"]

log = logging.getLogger("pipeline.kafka")

#: Errors by which the broker says another producer now holds our transactional id.
FENCED: Final = (ProducerFenced, InvalidProducerEpoch)

Record = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]], int]


class PartitionLost(Exception):
    """Partition ``partition``'s producer was fenced: another member owns the partition."""

    def __init__(self, partition: int, cause: BaseException) -> None:
        super().__init__(f"partition {partition} lost: producer fenced ({cause!r})")
        self.partition = partition


def transactional_id(group: str, output_topic: str, partition: int) -> str:
    """The ``transactional.id`` of output partition ``partition``'s writer."""
    return f"{group}.dedupe.{output_topic}.{partition}"


class PartitionWriters:
    """The transactional producers of the window partitions this member owns.

    ``options``: AIOKafkaProducer keyword arguments shared by every producer (connection,
    compression, ...); ``acks``, idempotence and ``transactional_id`` are set here.
    """

    def __init__(self, group: str, output_topic: str, options: Mapping[str, Any]) -> None:
        self.group = group
        self.output_topic = output_topic
        self._options = {"max_batch_size": PRODUCER_BATCH_BYTES, **options}
        self._producers: dict[int, Any] = {}

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions open now."""
        return frozenset(self._producers)

    async def open(self, partition: int) -> None:
        """Start partition ``partition``'s producer. Its start registers the transactional id
        (``InitProducerId``), which fences any previous owner; returns once that is done.
        Credentials without Write on the id raise `SettingProblem` naming it (no retry helps)."""
        if partition in self._producers:
            return
        name = transactional_id(self.group, self.output_topic, partition)
        producer = AIOKafkaProducer(
            **self._options, acks="all", enable_idempotence=True, transactional_id=name
        )
        try:
            await producer.start()
        except TransactionalIdAuthorizationFailed:
            await producer.stop()
            prefix = transactional_id(self.group, self.output_topic, 0)[:-1]
            raise SettingProblem(
                f"not authorized to Write transactional id {name!r}: --exactly-once writes "
                f"output partition {partition} under it (grant Write on the transactional ids "
                f"prefixed {prefix!r})"
            ) from None
        except BaseException:
            await producer.stop()
            raise
        self._producers[partition] = producer

    async def write(
        self,
        partition: int,
        records: Sequence[Record],
        offsets: Mapping[TopicPartition, int],
        group_id: str,
        also: Mapping[str, Sequence[Record]] | None = None,
    ) -> None:
        """One transaction: ``records`` (key, value, headers, timestamp ms) to output partition
        ``partition``, the records of ``also`` to partition ``partition`` of their topics (the
        state topic), and ``offsets`` (the next offsets to consume) committed for consumer
        group ``group_id``. Returns once committed. Raises :class:`PartitionLost` if fenced;
        on any other error the transaction is aborted and the error re-raised. Either way the
        partition's producer is closed: :meth:`open` it again to go on."""
        producer = self._producers.get(partition)
        if producer is None:
            raise ValueError(f"partition {partition} is not open")
        try:
            await producer.begin_transaction()
            try:
                sent = await queue(producer, self.output_topic, records, [partition] * len(records))
                for topic, more in (also or {}).items():
                    sent += await queue(producer, topic, more, [partition] * len(more))
                # Every batch acknowledged before the offsets and the commit (one await).
                # Every batch's outcome retrieved: a fenced producer fails them all.
                results = await asyncio.gather(*(s.future for s in sent), return_exceptions=True)
                failed = next((r for r in results if isinstance(r, BaseException)), None)
                if failed is not None:
                    raise failed
                if offsets:
                    await producer.send_offsets_to_transaction(dict(offsets), group_id)
                await producer.commit_transaction()
            except BaseException as exc:
                if not isinstance(exc, FENCED):
                    await self._abort(producer, partition)
                raise
        except FENCED as exc:
            await self._drop(partition)
            raise PartitionLost(partition, exc) from exc

    async def close(self, partition: int) -> None:
        """Stop partition ``partition``'s producer (after revocation); nothing is open then."""
        await self._drop(partition)

    async def close_all(self) -> None:
        for partition in list(self._producers):
            await self._drop(partition)

    async def _abort(self, producer: Any, partition: int) -> None:
        """Abort the open transaction and close the producer: after a failed batch aiokafka's
        sequence numbers are out of step with the broker's (it has no epoch bump, KIP-360), so
        the producer cannot be trusted with another transaction; :meth:`open` starts afresh."""
        try:
            if producer._txn_manager.is_fatal_error():
                # aiokafka refuses to abort from its fatal state (an assertion, not a Kafka
                # error): nothing of the transaction is visible, and the broker aborts it when
                # the next owner opens the partition's transactional id (or it times out).
                log.warning(
                    "transaction abandoned: producer in a fatal state",
                    extra={"partition": partition},
                )
            else:
                await producer.abort_transaction()
        except FENCED:
            raise
        except KafkaError as exc:  # the broker aborts it on the next open
            log.warning(
                "transaction abort failed", extra={"partition": partition, "error": repr(exc)}
            )
        finally:
            await self._drop(partition)

    async def _drop(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            # aiokafka fails its transaction waiter too when fenced, and nobody awaits it once
            # a batch's future failed first: mark it seen ("exception was never retrieved").
            waiter = getattr(producer._txn_manager, "_transaction_waiter", None)
            if waiter is not None and waiter.done() and not waiter.cancelled():
                waiter.exception()
            await producer.stop()
