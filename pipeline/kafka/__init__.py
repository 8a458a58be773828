"""Kafka adapters: aiokafka clients, fetch, topic limits, partitioner, sink, transactions."""
