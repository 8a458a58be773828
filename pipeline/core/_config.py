"""What the core needs to know beyond the records themselves."""

from __future__ import annotations

from typing import Final, NamedTuple

import msgspec

from ._records import DEFAULT_RECORD_MAX_BYTES

#: Bodies above this many bytes are rejected before parsing (configurable).
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024


class ProviderRoute(NamedTuple):
    """Where a topic's unlabelled records go: a provider, and its endpoint when fixed."""

    provider: str
    endpoint: str | None


class CoreConfig(msgspec.Struct, kw_only=True):
    """What the core needs to know beyond the records themselves."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Per-record byte limits of the output and dead-letter topics (key + value + headers +
    #: record overhead); the Kafka layer sets them from the topics' max.message.bytes at start.
    output_max_bytes: int = DEFAULT_RECORD_MAX_BYTES
    dead_letter_max_bytes: int = DEFAULT_RECORD_MAX_BYTES
    #: topic → (provider, endpoint or None); consulted when a record has no `provider` header.
    topic_routes: dict[str, ProviderRoute] = msgspec.field(default_factory=dict)
    #: "provider" or "provider/account" → IANA zone for naive times.
    time_zones: dict[str, str] = msgspec.field(default_factory=dict)
    #: Records stamped further ahead of the wall clock do not move the window's clock.
    clock_skew_tolerance_ms: int = 300_000
