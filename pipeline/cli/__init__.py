"""`python -m pipeline`: run (Kafka or embedded files), ingress, topics, normalise,
schema."""

from ._embedded import read_records, run_embedded
from ._main import event_schema, main, parser, state_schema

__all__ = ["event_schema", "main", "parser", "read_records", "run_embedded", "state_schema"]
