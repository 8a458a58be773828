"""Development tools: the local Kafka launcher (`make broker`, the tests, the benchmarks)."""
