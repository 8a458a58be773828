"""Shared fixtures: one real Kafka broker per test session, started only when a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.broker import LocalCluster, LocalKafka, kafka_bootstrap_from_env


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so the fixture works under any config (the suite's own pyproject has it).
    config.addinivalue_line("markers", "kafka: needs the real Kafka broker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that need a broker (or the cluster) get the `kafka` marker, so `-m "not kafka"` runs
    # the pure core.
    for item in items:
        if {"kafka_bootstrap", "kafka_cluster"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafka | None]:
    """The suite's own broker, or None when KAFKA_BOOTSTRAP_SERVERS points at an external one.

    A broker that cannot start raises here (tests ERROR, the run fails): never a skip.
    """
    if kafka_bootstrap_from_env():
        yield None
        return
    with LocalKafka() as kafka:
        yield kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka | None) -> str:
    """Bootstrap address of a real Kafka broker (``host:port``)."""
    if kafka_broker is None:
        env = kafka_bootstrap_from_env()
        assert env is not None
        return env
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[LocalCluster]:
    """A three-node KRaft cluster (replication 3, min.insync.replicas 2) of the suite's own,
    whatever KAFKA_BOOTSTRAP_SERVERS says: its tests kill and freeze its nodes."""
    with LocalCluster(3) as cluster:
        yield cluster
