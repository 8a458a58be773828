"""The stream runtime: stages, the two topologies, the processor and its workers."""

from ._processor import run_kafka

__all__ = ["run_kafka"]
