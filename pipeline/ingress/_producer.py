"""The acknowledged writer: requests hand it a body and wait; one task writes whatever is pending
as whole producer batches, and each request learns when *its* batch was acknowledged.

No request flushes or awaits the broker on its own: while one batch is on its way, the bodies
of the requests that arrive meanwhile pile up and leave together in the next. Raw records carry
no key, so the partition is free: every drain fills batches for one partition and the next drain
moves to the next partition (sticky round-robin), so batches are as large as the traffic makes
them and the partitions get an even share.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidProducerEpoch,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownProducerId,
)

from ..errors import TopicProblem
from ..kafka import close_now, compression_options, kafka_options, start_with_retry
from ._settings import IngressSettings, kafka_settings

log = logging.getLogger("pipeline.ingress")

#: Size of one producer batch; a larger body still goes, alone in its batch.
BATCH_BYTES: Final = 1024 * 1024

Headers = list[tuple[str, bytes]]
_TOO_LARGE: Final = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)
#: Batches that expired while the broker was away leave gaps in the idempotent producer's
#: sequence numbers, which the broker then refuses forever; aiokafka does not recover (Java's
#: client bumps the epoch), so the writer starts a new producer (a new producer id).
_SEQUENCE_BROKEN: Final = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)


class TooLarge(Exception):
    """The broker refused this body for its size (a batch of its own): retrying cannot help."""


class _Pending:
    __slots__ = ("future", "headers", "timestamp_ms", "value")

    def __init__(
        self, value: bytes, headers: Headers, timestamp_ms: int, future: asyncio.Future[None]
    ) -> None:
        self.value = value
        self.headers = headers
        self.timestamp_ms = timestamp_ms
        self.future = future


class Writer:
    def __init__(
        self,
        settings: IngressSettings,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.raw_topic
        self.producer = self._new_producer()
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._partitions = 1
        self._next_partition = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._renew = False
        self._on_batch = on_batch
        self.started = False

    def _new_producer(self) -> AIOKafkaProducer:
        settings = self.settings
        return AIOKafkaProducer(
            **kafka_options(kafka_settings(settings)),
            **compression_options(kafka_settings(settings)),
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=BATCH_BYTES,
            max_request_size=max(8 * BATCH_BYTES, settings.max_request_bytes + 64 * 1024),
            # A batch the broker cannot take within the request's deadline fails; the request
            # has answered 503 by then, and the provider retries.
            request_timeout_ms=int(settings.ack_timeout_s * 1000),
        )

    async def start(self) -> None:
        try:
            await start_with_retry(self.producer, "producer", kafka_settings(self.settings))
        except ClusterAuthorizationFailedError:
            # The idempotent producer's id (InitProducerId) is refused to a principal with
            # neither Write on some topic nor IdempotentWrite on the cluster.
            await asyncio.wait_for(self.producer.stop(), 5)
            raise TopicProblem(
                f"not authorized to Write raw (--raw-topic) topic {self.topic!r}: the "
                "idempotent producer's id (InitProducerId) was refused"
            ) from None
        parts = await self.producer.partitions_for(self.topic)
        self._partitions = len(parts)
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.started = True
        log.info("producer started", extra={"topic": self.topic, "partitions": self._partitions})

    def submit(self, value: bytes, headers: Headers, timestamp_ms: int) -> asyncio.Future[None]:
        """Queue one body; the future completes when the broker holds it (or fails)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(value, headers, timestamp_ms, future))
        self._wake.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, []
            # Requests that gave up (their deadline passed) are not written.
            live = [p for p in pending if not p.future.done()]
            try:
                if self._renew:
                    await self._renew_producer()
                if live:
                    await self._write(live)
            except Exception as exc:  # no producer, or it refused the batch: fail those waiting
                self._failed(live, exc)
            if self._closing and not self._pending:
                return

    async def _write(self, items: Sequence[_Pending]) -> None:
        producer = self.producer
        partition = self._next_partition
        self._next_partition = (partition + 1) % self._partitions
        batch = producer.create_batch()
        members: list[_Pending] = []
        for item in items:
            while (
                batch.append(
                    key=None, value=item.value, timestamp=item.timestamp_ms, headers=item.headers
                )
                is None
            ):
                await self._send(batch, members, partition)
                partition = self._next_partition
                self._next_partition = (partition + 1) % self._partitions
                batch, members = producer.create_batch(), []
            members.append(item)
        await self._send(batch, members, partition)

    async def _send(self, batch: Any, members: list[_Pending], partition: int) -> None:
        try:
            delivery = await self.producer.send_batch(batch, self.topic, partition=partition)
        except Exception as exc:
            self._failed(members, exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(members))
        delivery.add_done_callback(lambda done: self._delivered(done, members))

    def _delivered(self, done: asyncio.Future[Any], members: list[_Pending]) -> None:
        exc = None if done.cancelled() else done.exception()
        if exc is not None or done.cancelled():
            # Only a body alone in its batch is known to be too large itself (larger ones
            # always are: a batch takes a second record only while under BATCH_BYTES).
            if isinstance(exc, _TOO_LARGE) and len(members) == 1:
                exc = TooLarge(str(exc))
            self._failed(members, exc or asyncio.CancelledError())
            return
        for item in members:
            if not item.future.done():
                item.future.set_result(None)

    async def _renew_producer(self) -> None:
        self._renew = False
        old, self.producer = self.producer, self._new_producer()
        log.warning("producer sequence broken: starting a new producer")
        # The old one's unsent batches fail (their requests answer 503 and are retried).
        await old.stop()
        try:
            await start_with_retry(self.producer, "producer", kafka_settings(self.settings))
        except BaseException:
            self._renew = True  # tried again at the next wake
            raise

    def _failed(self, members: Sequence[_Pending], exc: BaseException) -> None:
        if isinstance(exc, _SEQUENCE_BROKEN):
            self._renew = True
            self._wake.set()
        for item in members:
            if not item.future.done():
                item.future.set_exception(exc)

    async def stop(self, timeout: float) -> bool:
        """Write what is pending, wait for the broker's answers, stop the producer; within
        `timeout` seconds whatever the broker does. False when the time was up first: the
        bodies still unacknowledged were never answered "received" (their requests got a 503),
        and the producer's connections are closed without them."""
        try:
            async with asyncio.timeout(timeout):
                if self._task is not None:
                    self._closing = True
                    self._wake.set()
                    await asyncio.shield(self._task)
                await self.producer.stop()  # flushes the batches still in the accumulator
            return True
        except TimeoutError:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._failed(self._pending, TimeoutError("stopped before the broker answered"))
            await close_now(self.producer)
            return False
