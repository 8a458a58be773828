"""Topics checked at start (a missing or unauthorised topic is named), against the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.errors import TopicProblem
from pipeline.kafka import TOPIC_AUTHORIZATION_FAILED, check_topics, ensure_topic, matching_topics
from pipeline.kafka._topics import _problem

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


def name(what: str) -> str:
    return f"topics-{what}-{uuid.uuid4().hex[:8]}"


async def test_missing_topic_is_named_with_its_role(admin: AIOKafkaAdminClient) -> None:
    present, missing = name("present"), name("missing")
    assert await ensure_topic(admin, present, 3) == 3
    assert await check_topics(admin, {present: "input (--input-topics)"}) == {present: 3}
    with pytest.raises(TopicProblem) as caught:
        await check_topics(
            admin, {present: "input (--input-topics)", missing: "output (--output-topic)"}
        )
    assert str(caught.value) == (
        f"output (--output-topic) topic {missing!r} does not exist (create it, or fix the setting)"
    )
    # Looking did not create it (the broker, at its default auto.create.topics.enable=true,
    # creates a topic named by a metadata request that allows it, a moment later).
    for _ in range(6):
        assert missing not in await admin.list_topics()
        await asyncio.sleep(0.5)


async def test_ensure_topic_creates_once_with_config(admin: AIOKafkaAdminClient) -> None:
    topic = name("repartition")
    assert await ensure_topic(admin, topic, 4, {"retention.ms": "3600000"}) == 4
    assert await ensure_topic(admin, topic, 9, like=topic) == 4  # exists: kept as it is
    assert await matching_topics(admin, topic.replace("repartition", "repart.*")) == [topic]


def test_authorization_failure_names_topic_and_operation() -> None:
    problem = _problem("sms-out", "output (--output-topic)", TOPIC_AUTHORIZATION_FAILED, "Describe")
    assert str(problem) == "not authorized to Describe output (--output-topic) topic 'sms-out'"
