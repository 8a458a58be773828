"""`python -m pipeline`: run (Kafka or embedded files), ingress, normalise, schema."""

from ._embedded import read_records, run_embedded
from ._main import event_schema, main

__all__ = ["event_schema", "main", "read_records", "run_embedded"]
