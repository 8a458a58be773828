"""The Kafka stages: a thin asynchronous shell around the batch core."""
