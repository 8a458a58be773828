"""The ASGI application: a route lookup, the guards (allow-list, token, in-flight bounds, body
limit, timeouts), then the body goes to the writer and the answer waits for the broker.

Logs carry sizes and ids only: never a body, a query string (it may hold the token) or a header.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ._metrics import IngressMetrics
from ._producer import TooLarge, Writer
from ._routes import ROUTES, Answer, IngressPath
from ._settings import IngressSettings, networks

log = logging.getLogger("pipeline.ingress")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TEXT: Final = b"text/plain; charset=utf-8"
#: Longest `account` accepted (it becomes a Kafka header and a metric-free id in logs).
ACCOUNT_MAX: Final = 256


def _plain(text: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> Answer:
    headers = [(b"content-type", _TEXT), (b"content-length", str(len(text)).encode())]
    return Answer(text, headers + (extra or []))


class Ingress:
    def __init__(self, settings: IngressSettings, writer: Writer, metrics: IngressMetrics) -> None:
        self.settings = settings
        self.writer = writer
        self.metrics = metrics
        self.tokens = {p: t.encode() for p, t in settings.tokens.items()}
        self.allowed = networks(settings)
        self.in_flight = 0
        self.in_flight_bytes = 0
        self.limit = settings.max_request_bytes
        retry = [(b"retry-after", str(settings.retry_after_s).encode())]
        self.unavailable = _plain(b"unavailable, retry later\n", retry)
        self.overloaded = _plain(b"overloaded, retry later\n", retry)
        self.too_large = _plain(b"body too large\n")
        self.not_found = _plain(b"not found\n")
        self.timeout = _plain(b"request timeout\n")
        self.ready_checked_at = 0.0
        self.ready_ok = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is handled by the server module
            return
        path = scope["path"]
        route = ROUTES.get(path)
        if route is None:
            await self._other(scope, path, send)
            return
        if scope["method"] != "POST":
            self._count(route, "method_not_allowed")
            await _respond(send, 405, _plain(b"POST only\n", [(b"allow", b"POST")]))
            return
        refused = self._refused(scope, route)
        if refused is not None:
            status, outcome = refused
            self._count(route, outcome)
            await _respond(send, status, _plain(outcome.encode() + b"\n"))
            return
        if self.in_flight >= self.settings.max_in_flight:
            self._count(route, "overloaded")
            await _respond(send, 503, self.overloaded, close=True)
            return
        self.in_flight += 1
        self.metrics.in_flight.inc()
        held = 0
        try:
            held = await self._handle(scope, receive, send, route)
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= held
            self.metrics.in_flight.dec()
            self.metrics.in_flight_bytes.set(self.in_flight_bytes)

    def _count(self, route: IngressPath, outcome: str) -> None:
        self.metrics.outcome[route.provider, route.endpoint, outcome].inc()

    def _refused(self, scope: Scope, route: IngressPath) -> tuple[int, str] | None:
        if self.allowed:
            client = scope.get("client")
            try:
                address = ipaddress.ip_address(client[0]) if client else None
            except ValueError:
                address = None
            if address is None or not any(address in net for net in self.allowed):
                return 403, "forbidden"
        token = self.tokens.get(route.provider)
        if token is not None:
            given = _header(scope, b"x-ingress-token") or _query(scope).get("token", "").encode()
            if not hmac.compare_digest(given, token):
                return 401, "unauthorized"
        return None

    async def _handle(self, scope: Scope, receive: Receive, send: Send, route: IngressPath) -> int:
        """Returns the body bytes it held (the caller releases them from the budget)."""
        settings = self.settings
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            self._count(route, "too_large" if declared.isdigit() else "bad_request")
            await _respond(send, 413 if declared.isdigit() else 400, self.too_large, close=True)
            return 0
        account = _query(scope).get("account")
        if account is not None and (len(account) > ACCOUNT_MAX or not account.isprintable()):
            self._count(route, "bad_request")
            await _respond(send, 400, _plain(b"bad account\n"))
            return 0
        # Reserve what the body will hold before reading it, so memory stays bounded.
        held = int(declared) if declared is not None else 0
        if self.in_flight_bytes + held > settings.max_in_flight_bytes:
            self._count(route, "overloaded")
            await _respond(send, 503, self.overloaded, close=True)
            return 0
        self.in_flight_bytes += held
        self.metrics.in_flight_bytes.set(self.in_flight_bytes)
        chunks = []
        size = 0
        try:
            async with asyncio.timeout(settings.request_timeout_s):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return held
                    chunk = message.get("body", b"")
                    more = message.get("more_body", False)
                    size += len(chunk)
                    if size > self.limit:
                        self._count(route, "too_large")
                        await _respond(send, 413, self.too_large, close=True)
                        return held
                    if size > held:  # chunked: reserve as it comes
                        self.in_flight_bytes += size - held
                        held = size
                        if self.in_flight_bytes > settings.max_in_flight_bytes:
                            self._count(route, "overloaded")
                            await _respond(send, 503, self.overloaded, close=True)
                            return held
                    if chunk:
                        chunks.append(chunk)
        except TimeoutError:
            self._count(route, "timeout")
            await _respond(send, 408, self.timeout, close=True)
            return held
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        received = time.monotonic()
        headers = list(route.headers)
        if account is not None:
            headers.append(("account", account.encode()))
        content_type = _header(scope, b"content-type")
        if content_type is not None:
            headers.append(("content-type", content_type))
        future = self.writer.submit(body, headers, time.time_ns() // 1_000_000)
        try:
            await asyncio.wait_for(future, settings.ack_timeout_s)
        except TooLarge:
            self._count(route, "too_large")
            log.warning("body refused by the broker as too large", extra={"bytes": size})
            await _respond(send, 413, self.too_large)
            return held
        except Exception as exc:  # timeout or a broker error: not stored, so not a success
            self._count(route, "broker_unavailable")
            log.warning(
                "body not acknowledged",
                extra={"provider": route.provider, "bytes": size, "error": type(exc).__name__},
            )
            await _respond(send, 503, self.unavailable)
            return held
        self.metrics.ack_latency.observe(time.monotonic() - received)
        self._count(route, "accepted")
        self.metrics.route_bytes[route.provider, route.endpoint].inc(size)
        await _respond(send, 200, route.success)
        return held

    async def _other(self, scope: Scope, path: str, send: Send) -> None:
        if scope["method"] == "GET" and path == "/livez":
            await _respond(send, 200, _plain(b"ok\n"))
        elif scope["method"] == "GET" and path == "/readyz":
            ready = await self.ready()
            await _respond(
                send, 200 if ready else 503, _plain(b"ready\n" if ready else b"not ready\n")
            )
        elif scope["method"] == "GET" and path == "/metrics":
            data = generate_latest(self.metrics.registry)
            await _respond(
                send,
                200,
                Answer(
                    data,
                    [
                        (b"content-type", CONTENT_TYPE_LATEST.encode()),
                        (b"content-length", str(len(data)).encode()),
                    ],
                ),
            )
        else:
            self.metrics.unknown["not_found"].inc()
            await _respond(send, 404, self.not_found)

    async def ready(self) -> bool:
        """Producer started and the broker answered within the last second or two."""
        writer = self.writer
        if not writer.started:
            return False
        now = time.monotonic()
        if now - self.ready_checked_at > 1.0:
            self.ready_checked_at = now
            try:
                self.ready_ok = bool(
                    await asyncio.wait_for(writer.producer.client.force_metadata_update(), 2.0)
                )
            except Exception:
                self.ready_ok = False
        return self.ready_ok


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"))) if raw else {}


async def _respond(send: Send, status: int, answer: Answer, close: bool = False) -> None:
    headers = [*answer.headers, (b"connection", b"close")] if close else answer.headers
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
