"""Connection options and start-up of aiokafka clients, shared by every stage."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, Final

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from ..config import Settings
from ..errors import BrokerUnreachable
from ..state import Restorer
from ._sink import PRODUCER_BATCH_BYTES

log = logging.getLogger("pipeline.kafka")


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
        )
    return options


async def start_with_retry(client: Any, what: str, settings: Settings) -> None:
    """Start an aiokafka client, waiting for the broker with a bounded, logged retry."""
    deadline = time.monotonic() + settings.startup_timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await client.start()
            return
        except KafkaConnectionError as exc:
            if time.monotonic() >= deadline:
                raise BrokerUnreachable(
                    f"Kafka at {settings.bootstrap_servers} not reachable after "
                    f"{settings.startup_timeout_s}s ({what}): {exc}"
                ) from None
            log.warning(
                "waiting for Kafka",
                extra={"bootstrap": settings.bootstrap_servers, "client": what, "attempt": attempt},
            )
            await anyio.sleep(min(2.0, 0.2 * attempt))


async def close_now(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Close the connections of a client whose `stop` was cut short (the broker is gone): what
    it still held (unsent records, a group membership) is dropped; nothing of it was committed."""
    if isinstance(client, AIOKafkaProducer):
        if client._sender is not None:
            await client._sender.close()
        await client.client.close()
    else:
        fetcher = client._fetcher
        if fetcher is not None:
            # Its own close stops at the first fetch task it cancels (it re-raises that
            # cancellation), leaving the others running.
            tasks = [fetcher._fetch_task, *fetcher._pending_tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await client._client.close()


#: How often clients refresh metadata: a partition count change is seen within this.
METADATA_MAX_AGE_MS: Final = 2000


def new_producer(settings: Settings, batch_bytes: int = PRODUCER_BATCH_BYTES) -> AIOKafkaProducer:
    """The idempotent producer every stage of a process writes through."""
    return AIOKafkaProducer(
        **kafka_options(settings),
        enable_idempotence=True,
        acks="all",
        compression_type=None if settings.compression == "none" else settings.compression,
        linger_ms=settings.linger_ms,
        max_batch_size=batch_bytes,
        max_request_size=8 * PRODUCER_BATCH_BYTES,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


def new_group_consumer(settings: Settings, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka_options(settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=settings.isolation_level,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )


def new_restore_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer without a group for reading output partitions back (window restores)."""
    return AIOKafkaConsumer(
        **kafka_options(settings),
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


def new_restorer(settings: Settings) -> Restorer:
    """A restorer of the output topic's partitions, on a consumer of its own."""
    return Restorer(
        settings,
        new_restore_consumer(settings),
        functools.partial(start_with_retry, what="restore", settings=settings),
    )
