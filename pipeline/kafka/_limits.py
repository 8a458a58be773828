"""What the broker will accept on each topic, learned at start.

A record the broker refuses (too large for the topic's `max.message.bytes`, or stamped outside
`message.timestamp.before.max.ms` / `message.timestamp.after.max.ms` of its clock) fails its whole
batch, and with an idempotent producer every later batch to that partition too
(`OutOfOrderSequenceNumber`: aiokafka does not rewind its sequence numbers). So the limits are
read from the broker before the first record is sent, and every record is sized and timed
against them, instead of learning them from refusals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

log = logging.getLogger("pipeline.kafka")

#: Kafka's defaults, used where a config cannot be read (an old broker, no DescribeConfigs right).
DEFAULT_MAX_MESSAGE_BYTES: Final = 1024 * 1024 + 12
DEFAULT_TIMESTAMP_AFTER_MAX_MS: Final = 3_600_000
DEFAULT_TIMESTAMP_BEFORE_MAX_MS: Final = 2**63 - 1

#: Room kept in a topic's limit for the batch header (61 bytes) and compression framing
#: (incompressible values grow a little); `record_size` of the core counts a record's own.
BATCH_MARGIN: Final = 4096
#: Records are kept this far inside the timestamp window: the broker judges by its own clock.
CLOCK_MARGIN_MS: Final = 60_000

_TOPIC_KEYS: Final = {
    "max.message.bytes": "max_message_bytes",
    "message.timestamp.after.max.ms": "timestamp_after_max_ms",
    "message.timestamp.before.max.ms": "timestamp_before_max_ms",
}
_BROKER_KEYS: Final = {
    "message.max.bytes": "max_message_bytes",
    "log.message.timestamp.after.max.ms": "timestamp_after_max_ms",
    "log.message.timestamp.before.max.ms": "timestamp_before_max_ms",
}


class TopicLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The broker's limits for records of one topic."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    timestamp_after_max_ms: int = DEFAULT_TIMESTAMP_AFTER_MAX_MS
    timestamp_before_max_ms: int = DEFAULT_TIMESTAMP_BEFORE_MAX_MS

    @property
    def record_bytes(self) -> int:
        """The largest `record_size` (the core's) of a record the topic takes."""
        return self.max_message_bytes - BATCH_MARGIN

    def stamp_window(self, now_ms: int) -> tuple[int, int]:
        """The record timestamps the broker accepts at `now_ms`, inside a clock margin."""
        after = max(0, self.timestamp_after_max_ms - CLOCK_MARGIN_MS)
        before = max(0, self.timestamp_before_max_ms - CLOCK_MARGIN_MS)
        return now_ms - before, now_ms + after


def _values(configs: Sequence[Any], names: dict[str, str]) -> dict[str, int]:
    out = {}
    for entry in configs:
        field = names.get(entry[0])
        if field is not None and entry[1] is not None:
            out[field] = int(entry[1])
    return out


async def topic_limits(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, TopicLimits]:
    """The limits of `topics`: each topic's own config (a topic without an override reports the
    broker's value), else the broker's `message.max.bytes` and timestamp window, else Kafka's
    defaults (logged)."""
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, t, dict.fromkeys(_TOPIC_KEYS)) for t in topics
    ]
    found: dict[str, dict[str, int]] = {}
    for response in await admin.describe_configs(resources):
        for code, message, _kind, name, configs in response.resources:
            if code:
                log.warning(
                    "topic config not readable",
                    extra={"topic": name, "error_code": code, "error": message},
                )
                continue
            found[name] = _values(configs, _TOPIC_KEYS)
    if any(len(found.get(t, ())) < len(_TOPIC_KEYS) for t in topics):
        broker = await _broker_values(admin)
        found = {t: {**broker, **found.get(t, {})} for t in topics}
    return {t: TopicLimits(**found[t]) for t in topics}


async def _broker_values(admin: AIOKafkaAdminClient) -> dict[str, int]:
    cluster = await admin.describe_cluster()
    broker_id = str(
        cluster["controller_id"]
        if cluster["controller_id"] >= 0
        else cluster["brokers"][0]["node_id"]
    )
    resource = ConfigResource(ConfigResourceType.BROKER, broker_id, dict.fromkeys(_BROKER_KEYS))
    (response,) = await admin.describe_configs([resource])
    code, message, _kind, _name, configs = response.resources[0]
    if code:
        log.warning(
            "broker config not readable, assuming Kafka's defaults",
            extra={"broker": broker_id, "error_code": code, "error": message},
        )
        return {}
    return _values(configs, _BROKER_KEYS)
