"""Kafka adapters: aiokafka clients, fetch, topic limits and checks, partitioner, sink,
transactional writers. Each is a thin, typed layer over aiokafka; none knows the topologies."""

from ._clients import (
    METADATA_MAX_AGE_MS,
    close_now,
    compression_options,
    group_refused,
    kafka_options,
    new_group_consumer,
    new_producer,
    new_restore_consumer,
    new_restorer,
    start_with_retry,
)
from ._fetch import Unreadable, input_records, install
from ._limits import CLOCK_MARGIN_MS, DEFAULT_MAX_MESSAGE_BYTES, TopicLimits, topic_limits
from ._partitioner import murmur2, partition_for, partitions_for
from ._sink import PRODUCER_BATCH_BYTES, Record, Sent, Sink, queue
from ._topics import (
    TOPIC_AUTHORIZATION_FAILED,
    check_topics,
    cleanup_policy,
    create_topic,
    ensure_topic,
    matching_topics,
    wait_for_leaders,
)
from ._transactions import PartitionLost, PartitionWriters, transactional_id

__all__ = [
    "CLOCK_MARGIN_MS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "METADATA_MAX_AGE_MS",
    "PRODUCER_BATCH_BYTES",
    "TOPIC_AUTHORIZATION_FAILED",
    "PartitionLost",
    "PartitionWriters",
    "Record",
    "Sent",
    "Sink",
    "TopicLimits",
    "Unreadable",
    "check_topics",
    "cleanup_policy",
    "close_now",
    "compression_options",
    "create_topic",
    "ensure_topic",
    "group_refused",
    "input_records",
    "install",
    "kafka_options",
    "matching_topics",
    "murmur2",
    "new_group_consumer",
    "new_producer",
    "new_restore_consumer",
    "new_restorer",
    "partition_for",
    "partitions_for",
    "queue",
    "start_with_retry",
    "topic_limits",
    "transactional_id",
    "wait_for_leaders",
]
