"""Entry points of ``python -m pipeline``: run (Kafka or embedded), ingress, normalise, schema."""
