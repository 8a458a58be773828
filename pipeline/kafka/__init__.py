"""The Kafka stages: a thin asynchronous shell around the batch core."""

from ._serve import run_kafka

__all__ = ["run_kafka"]
