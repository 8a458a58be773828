"""Routing: which provider module and endpoint decode a record (headers, topic map, shape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from schemas import ReceiptEvent

from ..errors import BodyTooLarge, UnknownFormat
from ._config import CoreConfig, ProviderRoute
from ._records import Headers, InputRecord
from ._stats import CoreStats
from .normalise import RecordContext, format_epoch_ms, zone
from .providers import REGISTRY, ProviderModule


def sniff(body: bytes) -> ProviderRoute | None:
    """The provider and endpoint of an unlabelled body, from its shape alone."""
    for module in REGISTRY.values():
        endpoint = module.sniff(body)
        if endpoint is not None:
            return ProviderRoute(module.PROVIDER, endpoint)
    return None


#: The input headers that route a record.
_ROUTING_HEADERS: Final = frozenset({"provider", "endpoint", "account", "tz"})


def _routing_headers(headers: Headers) -> dict[str, str]:
    """The routing headers of a record, in one pass; the first of a repeated name wins."""
    found: dict[str, str] = {}
    for key, value in headers:
        if key in _ROUTING_HEADERS and key not in found and value is not None:
            found[key] = value.decode("utf-8", "replace")
    return found


class Decoder:
    """Routes a record to its provider module and decodes it; counts what it sees."""

    def __init__(self, config: CoreConfig | None = None) -> None:
        self.config = config or CoreConfig()
        self.stats = CoreStats()
        for name in self.config.time_zones.values():
            zone(name)  # fail at start, not on the first record

    def _route(self, record: InputRecord) -> tuple[ProviderModule, str, str | None, str | None]:
        """(module, endpoint, account header, tz) for a record, or UnknownFormat."""
        headers = record.headers
        provider = endpoint = account = tz = None
        if headers:
            found = _routing_headers(headers)
            provider, endpoint = found.get("provider"), found.get("endpoint")
            account, tz = found.get("account"), found.get("tz")
        if provider is None:
            route = self.config.topic_routes.get(record.topic)
            if route is not None:
                provider, endpoint = route.provider, endpoint or route.endpoint
        if provider is None:
            route = sniff(record.value)
            if route is None:
                raise UnknownFormat("provider not in headers or topic mapping, body shape unknown")
            provider, endpoint = route
        module = REGISTRY.get(provider)
        if module is None:
            raise UnknownFormat(f"unknown provider {provider!r}")
        if endpoint is None:
            endpoint = module.sniff(record.value)
            if endpoint is None:
                raise UnknownFormat(f"body is not a known {provider} format")
        if tz is None and self.config.time_zones:
            zones = self.config.time_zones
            tz = zones.get(f"{provider}/{account}") if account else None
            tz = tz or zones.get(provider)
        return module, endpoint, account, tz

    def decode(self, record: InputRecord) -> list[ReceiptEvent]:
        """Events of one record; raises DecodeError (dead letter) or NotReceipts (skip)."""
        if len(record.value) > self.config.max_body_bytes:
            raise BodyTooLarge(
                f"body of {len(record.value)} bytes exceeds the limit of "
                f"{self.config.max_body_bytes}"
            )
        module, endpoint, account, tz = self._route(record)
        self.stats.records_in[module.PROVIDER] += 1
        topic, partition, offset, stamp, _, value = record
        ctx = RecordContext(topic, partition, offset, stamp, account, tz, format_epoch_ms(stamp))
        return module.decode(value, endpoint, ctx)


def parse_routes(mapping: Mapping[str, str]) -> dict[str, ProviderRoute]:
    """`{"topic": "provider[.endpoint]"}` as routes; unknown providers are a config error."""
    routes = {}
    for topic, target in mapping.items():
        provider, _, endpoint = target.partition(".")
        if provider not in REGISTRY:
            raise ValueError(
                f"topic mapping {topic!r}: unknown provider {provider!r} "
                f"(known: {', '.join(REGISTRY)})"
            )
        routes[topic] = ProviderRoute(provider, endpoint or None)
    return routes
