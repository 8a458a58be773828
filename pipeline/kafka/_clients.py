"""Connection options and start-up of aiokafka clients, shared by every stage."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import struct
import time
from typing import Any, Final

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
)

from ..config import Settings, bootstrap_addresses
from ..errors import AuthenticationFailed, BrokerUnreachable, SettingProblem
from ..state import Restorer
from ._codecs import use_level
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

        bound_tls_close()
        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
            password=settings.ssl_password,
        )
    return options


#: Longest a closed TLS connection waits for the broker's close_notify before it is aborted.
TLS_CLOSE_GRACE_S: Final = 1.0


def bound_tls_close() -> None:
    """Bound the wait for a TLS connection to close (idempotent).

    aiokafka's client close waits for every connection to be closed, and over TLS that waits
    for the broker's close_notify, which Kafka does not always send; asyncio gives up only
    after 30 s, so a stop could spend all of --shutdown-timeout-s there. A TLS transport still
    open `TLS_CLOSE_GRACE_S` after its close (its buffered bytes long flushed) is aborted."""
    connection: Any = AIOKafkaConnection
    if getattr(connection.close, "_bounded", False):
        return
    close = connection.close

    def bounded_close(self: Any, reason: Any = None, exc: Any = None) -> Any:
        writer = self._writer
        closed = close(self, reason=reason, exc=exc)
        if writer is not None and self._ssl_context is not None and closed is not None:
            transport = writer.transport

            def abort() -> None:
                if not closed.done():
                    transport.abort()

            asyncio.get_running_loop().call_later(TLS_CLOSE_GRACE_S, abort)
        return closed

    bounded_close._bounded = True  # type: ignore[attr-defined]
    connection.close = bounded_close


#: Longest the diagnosis of a failed start waits for one bootstrap server.
PROBE_TIMEOUT_S: Final = 5.0


async def _tls_request(host: str, port: int, context: ssl.SSLContext) -> None:
    """One ApiVersions v0 round trip over TLS: a broker refusing the client's certificate
    answers the first read with a TLS alert (TLS 1.3 finishes the handshake before it)."""
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    try:
        client = b"pipeline-probe"
        request = struct.pack(">hhih", 18, 0, 1, len(client)) + client
        writer.write(struct.pack(">i", len(request)) + request)
        await writer.drain()
        await reader.readexactly(4)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _probe(host: str, port: int, settings: Settings, options: dict[str, Any]) -> None:
    if settings.security_protocol == "SSL":
        await _tls_request(host, port, options["ssl_context"])
        return
    conn = await create_conn(
        host,
        port,
        client_id="pipeline-probe",
        request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
        ssl_context=options.get("ssl_context"),
        security_protocol=settings.security_protocol,
        sasl_mechanism=settings.sasl_mechanism or "PLAIN",
        sasl_plain_username=settings.sasl_username,
        sasl_plain_password=settings.sasl_password,
    )
    conn.close()


async def refusal(settings: Settings) -> AuthenticationFailed | None:
    """Why the broker refuses this client's credentials, if it does: a connection to each
    bootstrap server as the clients make them (aiokafka reports a refused SASL login or TLS
    certificate as a mere failure to bootstrap). None when nothing was refused (e.g. no
    broker answers: that is waited for)."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    options = kafka_options(settings)
    for host, port in bootstrap_addresses(settings.bootstrap_servers):
        where = f"{host}:{port}"
        try:
            with anyio.fail_after(PROBE_TIMEOUT_S):
                await _probe(host, port, settings, options)
        except (SaslAuthenticationFailed, AuthenticationFailedError):
            return AuthenticationFailed(
                f"authentication failed: SASL {settings.sasl_mechanism} as user "
                f"{settings.sasl_username!r} was refused by the broker at {where}"
            )
        except ssl.SSLCertVerificationError as exc:
            trusted = settings.ssl_cafile or "the system's CA certificates"
            return AuthenticationFailed(
                f"authentication failed: TLS could not verify the certificate of the broker at "
                f"{where} with {trusted} (ssl_cafile): {exc.verify_message}"
            )
        except ssl.SSLError as exc:
            if "ALERT" not in str(exc.reason or ""):
                continue
            cert = (
                f"client certificate {settings.ssl_certfile}"
                if settings.ssl_certfile
                else "no client certificate (ssl_certfile is not set)"
            )
            return AuthenticationFailed(
                f"authentication failed: TLS with {cert} was refused by the broker at {where} "
                f"({exc.reason})"
            )
        except (OSError, KafkaError, TimeoutError, asyncio.IncompleteReadError):
            continue
    return None


def group_refused(exc: BaseException) -> SettingProblem | None:
    """A consumer group the credentials may not use (aiokafka raises it from the group's first
    join or offset fetch) as the grant to fix; None for any other error."""
    if not isinstance(exc, GroupAuthorizationFailedError):
        return None
    group = exc.args[0] if exc.args else "?"
    return SettingProblem(
        f"not authorized to Read group {group!r}: the processor's consumers join it and "
        "commit their offsets there"
    )


async def start_with_retry(client: Any, what: str, settings: Settings) -> None:
    """Start an aiokafka client, waiting for the broker with a bounded, logged retry; refused
    credentials stop it at once (`AuthenticationFailed`), they cannot get better."""
    deadline = time.monotonic() + settings.startup_timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await client.start()
            return
        except (SaslAuthenticationFailed, AuthenticationFailedError):
            raise await refusal(settings) or AuthenticationFailed(
                f"authentication failed: SASL {settings.sasl_mechanism} as user "
                f"{settings.sasl_username!r} was refused by the broker at "
                f"{settings.bootstrap_servers}"
            ) from None
        except KafkaConnectionError as exc:
            refused = await refusal(settings)
            if refused is not None:
                raise refused from None
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


def compression_options(settings: Settings) -> dict[str, Any]:
    """A producer's compression option; its level (`compression_level`) holds for every
    producer of this process."""
    use_level(settings.compression, settings.compression_level)
    return {"compression_type": None if settings.compression == "none" else settings.compression}


def new_producer(settings: Settings, batch_bytes: int = PRODUCER_BATCH_BYTES) -> AIOKafkaProducer:
    """The idempotent producer every stage of a process writes through."""
    return AIOKafkaProducer(
        **kafka_options(settings),
        **compression_options(settings),
        enable_idempotence=True,
        acks="all",
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
