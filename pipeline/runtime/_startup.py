"""Start-up checks: every topic there (the repartition and state topics created when missing),
its limits, and the partition count the topology depends on."""

from __future__ import annotations

import logging
from typing import NamedTuple

from aiokafka.admin import AIOKafkaAdminClient

from ..config import Settings, state_topic
from ..errors import SettingProblem
from ..kafka import (
    TopicLimits,
    check_topics,
    cleanup_policy,
    ensure_topic,
    kafka_options,
    matching_topics,
    start_with_retry,
    topic_limits,
)
from ._route import repartition_topic

log = logging.getLogger("pipeline.kafka")


class Layout(NamedTuple):
    #: P: the output topic's partition count (and the repartition topic's, when partitioned).
    partitions: int
    limits: dict[str, TopicLimits]


def co_partitioning_broken(output: str, output_count: int, repartition: str, count: int) -> str:
    return (
        f"topic {repartition!r} has {count} partitions but output topic {output!r} has "
        f"{output_count}: window p of the dedupe stage is output partition p, so both need the "
        "same count; stop every instance and add partitions to the smaller topic "
        "(kafka-topics --alter --partitions), then start again"
    )


async def prepare(settings: Settings) -> Layout:
    """Stop start-up on a missing or forbidden topic; learn the broker's record limits."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await start_with_retry(admin, "admin", settings)
    try:
        roles = {t: "input (--input-topics)" for t in settings.input_topics}
        if settings.input_pattern:
            roles = {}
            if not await matching_topics(admin, settings.input_pattern):
                log.warning(
                    "no topic matches the input pattern yet",
                    extra={"pattern": settings.input_pattern},
                )
        output = settings.output_topic
        roles[output] = "output (--output-topic)"
        roles[settings.dead_letter_topic] = "dead-letter (--dead-letter-topic)"
        counts = await check_topics(admin, roles)
        partitions = counts[output]
        topics = [output, settings.dead_letter_topic]
        if settings.topology == "partitioned":
            name = repartition_topic(settings)
            config = {"retention.ms": str(settings.repartition_retention_s * 1000)}
            count = await ensure_topic(
                admin,
                name,
                partitions,
                config,
                like=output,
                replicas=settings.repartition_replication_factor,
            )
            if count != partitions:
                raise SettingProblem(co_partitioning_broken(output, partitions, name, count))
            topics.append(name)
        states = state_topic(settings)
        if states is not None:
            await ensure_state_topic(admin, states, output, partitions)
            topics.append(states)
        return Layout(partitions, await topic_limits(admin, topics))
    finally:
        await admin.close()


async def ensure_state_topic(
    admin: AIOKafkaAdminClient, name: str, output: str, partitions: int
) -> None:
    """The state topic, created when missing (compacted, P partitions, replicas like the
    output's); an existing one with another partition count or not compacted stops start-up."""
    count = await ensure_topic(admin, name, partitions, {"cleanup.policy": "compact"}, like=output)
    if count != partitions:
        raise SettingProblem(
            f"state topic {name!r} (--state-topic) has {count} partitions but output topic "
            f"{output!r} has {partitions}: a message's state record goes to the partition of "
            "its events, so both need the same count (or --no-state)"
        )
    policy = await cleanup_policy(admin, name)
    if policy is not None and "compact" not in policy.split(","):
        raise SettingProblem(
            f"state topic {name!r} (--state-topic) has cleanup.policy={policy}, not compact: "
            "it keeps each message's newest state only when compacted (kafka-configs --alter "
            "--add-config cleanup.policy=compact, or --no-state)"
        )
