"""Topics checked at start.

Every topic the processor needs is looked up before any client subscribes or produces: a missing
one stops start-up with a message that names it and the setting that named it, instead of a bare
`UnknownTopicOrPartitionError` from a producer 40 s later; a topic the credentials may not
describe names the topic and the operation refused. Topics the processor owns (the repartition
topic) are created with `ensure_topic`; `python -m pipeline topics create` creates the others
with `create_topic`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.metadata import MetadataRequest

from ..errors import TopicProblem

#: Kafka protocol error codes the checks tell apart (see the protocol guide's error table).
UNKNOWN_TOPIC: Final = 3
TOPIC_AUTHORIZATION_FAILED: Final = 29
TOPIC_ALREADY_EXISTS: Final = 36
CLUSTER_AUTHORIZATION_FAILED: Final = 31


def _problem(
    topic: str, role: str, code: int, operation: str, reason: str | None = None
) -> TopicProblem:
    """The message for error `code`, with the broker's `reason` when it gave one."""
    because = f": {reason}" if reason else ""
    if code == UNKNOWN_TOPIC:
        return TopicProblem(
            f"{role} topic {topic!r} does not exist (create it, or fix the setting)"
        )
    if code in (TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED):
        return TopicProblem(f"not authorized to {operation} {role} topic {topic!r}{because}")
    return TopicProblem(
        f"{role} topic {topic!r}: {operation} failed with Kafka error code {code}{because}"
    )


async def check_topics(admin: AIOKafkaAdminClient, roles: Mapping[str, str]) -> dict[str, int]:
    """Partition counts of `roles` (topic → what it is for, e.g. "output (--output-topic)").

    Raises TopicProblem for the first topic that is missing, unauthorized or has no partitions.
    """
    # Not admin.describe_topics: its metadata request lets the broker create a missing topic
    # (auto.create.topics.enable is on by default), so the check would make what it reports.
    request = MetadataRequest(list(roles), allow_auto_topic_creation=False)
    described = (await admin._send_request(request)).to_object()["topics"]
    found = {t["topic"]: t for t in described}
    counts = {}
    for topic, role in roles.items():
        entry = found.get(topic)
        code = UNKNOWN_TOPIC if entry is None else int(entry["error_code"])
        if code:
            raise _problem(topic, role, code, "Describe")
        assert entry is not None
        if not entry["partitions"]:
            raise TopicProblem(f"{role} topic {topic!r} has no partitions")
        counts[topic] = len(entry["partitions"])
    return counts


async def matching_topics(admin: AIOKafkaAdminClient, pattern: str) -> list[str]:
    """Topics that a pattern subscription would take now (none is not an error: topics matching
    it are picked up when they appear)."""
    regex = re.compile(pattern)
    return sorted(t for t in await admin.list_topics() if regex.fullmatch(t))


async def create_topic(
    admin: AIOKafkaAdminClient,
    name: str,
    partitions: int,
    config: Mapping[str, str] | None = None,
    *,
    replicas: int = 1,
    role: str = "repartition",
) -> bool:
    """Create `name`; False when it already exists (it is kept as it is). A refusal raises
    TopicProblem naming the topic, its `role` and the broker's reason.

    Creating, not describing, is how to learn whether a topic exists: aiokafka's
    describe_topics lets a broker with auto.create.topics.enable create a missing topic with
    the broker's defaults (one partition)."""
    response: Any = await admin.create_topics(
        [NewTopic(name, partitions, replicas, topic_configs=dict(config or {}))]
    )
    for topic, code, *message in response.topic_errors:  # v1+ adds the broker's message
        if code == TOPIC_ALREADY_EXISTS:
            return False
        if code:
            raise _problem(topic, role, code, "Create", message[0] if message else None)
    return True


async def wait_for_leaders(admin: AIOKafkaAdminClient, name: str, timeout_s: float = 30.0) -> int:
    """The partition count of `name` once every partition has a leader (a client started
    earlier would otherwise see a partial topic)."""
    deadline = time.monotonic() + timeout_s
    while True:
        (entry,) = await admin.describe_topics([name])
        parts = entry["partitions"]
        if not entry["error_code"] and parts and all(p["leader"] >= 0 for p in parts):
            return len(parts)
        if time.monotonic() > deadline:
            raise TopicProblem(
                f"topic {name!r} has no leader for every partition after {timeout_s}s"
            )
        await asyncio.sleep(0.05)


async def ensure_topic(
    admin: AIOKafkaAdminClient,
    name: str,
    partitions: int,
    config: Mapping[str, str] | None = None,
    *,
    like: str | None = None,
    replicas: int = 0,
    timeout_s: float = 30.0,
) -> int:
    """Create `name` unless it exists (as many replicas as topic `like`, e.g. the output topic,
    else one); return its partition count once every partition has a leader. `replicas` > 0
    overrides `like`."""
    if not replicas and like is not None:
        (entry,) = await admin.describe_topics([like])
        replicas = max(1, len(entry["partitions"][0]["replicas"])) if entry["partitions"] else 1
    await create_topic(admin, name, partitions, config, replicas=replicas or 1)
    return await wait_for_leaders(admin, name, timeout_s)


async def cleanup_policy(admin: AIOKafkaAdminClient, name: str) -> str | None:
    """Topic `name`'s `cleanup.policy` (None when it cannot be read)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
    (response,) = await admin.describe_configs([resource])
    code, _message, _kind, _name, configs = response.resources[0]
    if code:
        return None
    return next((str(c[1]) for c in configs if c[0] == "cleanup.policy"), None)
