"""The real-broker launcher: round trips with aiokafka, isolation, stale state, clear failures."""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tools import broker as _broker
from tools.broker import (
    BrokerError,
    LocalCluster,
    LocalKafka,
    cache_root,
    fetch_kafka,
    reap_stale_brokers,
)

CONFTEST = Path(__file__).parents[1] / "conftest.py"
Records = list[tuple[int, bytes]]  # (partition, value)


def _gone(pid: int) -> bool:
    return _broker._proc_start_time(pid) is None


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
        deadline = time.monotonic() + 10
        while True:  # the broker's metadata catches up with the controller shortly after
            described = await admin.describe_topics([topic])
            if len(described[0]["partitions"]) == partitions or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert len(described[0]["partitions"]) == partitions
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, values: list[bytes], compression: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        compression_type=compression,
    )
    await producer.start()
    try:
        sends = [await producer.send(topic, v, key=v) for v in values]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _consume(consumer: AIOKafkaConsumer, count: int) -> Records:
    got: Records = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        got += [(tp.partition, m.value) for tp, msgs in batches.items() for m in msgs]
    # Poll a little longer: nothing beyond the expected records may show up.
    batches = await consumer.getmany(timeout_ms=700)
    got += [(tp.partition, m.value) for tp, msgs in batches.items() for m in msgs]
    return got


def _group_consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


def test_round_trip_resumes_from_committed_offsets(kafka_bootstrap: str) -> None:
    topic, group = f"rt-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    first = [f"a{i}".encode() for i in range(30)]
    second = [f"b{i}".encode() for i in range(15)]

    async def scenario() -> None:
        await _create_topic(kafka_bootstrap, topic, 3)
        await _produce(kafka_bootstrap, topic, first, "lz4")

        consumer = _group_consumer(kafka_bootstrap, topic, group)
        await consumer.start()
        try:
            got = await _consume(consumer, len(first))
            await consumer.commit()
            per_partition: dict[int, list[bytes]] = defaultdict(list)
            for partition, value in got:
                per_partition[partition].append(value)
            for partition, values in per_partition.items():
                committed = await consumer.committed(TopicPartition(topic, partition))
                assert committed == len(values)
        finally:
            await consumer.stop()
        assert sorted(v for _, v in got) == sorted(first)
        assert len(per_partition) >= 2, "keys should spread over the 3 partitions"
        for values in per_partition.values():  # order is kept within a partition
            assert values == sorted(values, key=first.index)

        await _produce(kafka_bootstrap, topic, second, "zstd")
        resumed = _group_consumer(kafka_bootstrap, topic, group)
        await resumed.start()
        try:
            got_after = await _consume(resumed, len(second))
        finally:
            await resumed.stop()
        assert sorted(v for _, v in got_after) == sorted(second)

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_second_launcher_is_isolated(kafka_broker: LocalKafka | None, kafka_bootstrap: str) -> None:
    other = LocalKafka()
    try:
        other.start()
        assert other.bootstrap != kafka_bootstrap
        if kafka_broker is not None:
            assert other.data_dir != kafka_broker.data_dir
        topic = f"only-here-{uuid.uuid4().hex[:8]}"

        async def topics(bootstrap: str) -> list[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                return list(await admin.list_topics())
            finally:
                await admin.close()

        asyncio.run(_create_topic(other.bootstrap, topic, 1))
        assert topic in asyncio.run(topics(other.bootstrap))
        assert topic not in asyncio.run(topics(kafka_bootstrap))
        data_dir = other.data_dir
        assert data_dir is not None and data_dir.is_dir()
    finally:
        other.stop()
    assert not data_dir.exists(), "a temporary data dir is removed on stop"
    if kafka_broker is not None:
        assert kafka_broker.running


CHILD = """
import sys, time
from tools.broker import LocalKafka
kafka = LocalKafka(data_dir=sys.argv[1])
kafka.start()
print(kafka.pid, flush=True)
time.sleep(300)
"""


def test_killed_run_does_not_break_next_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "kept"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 90)
        assert ready, "child broker did not start"
        java_pid = int(child.stdout.readline())
    finally:
        child.kill()  # SIGKILL: no cleanup runs in the owner
        child.wait(10)
    deadline = time.monotonic() + 15
    while not _gone(java_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(java_pid), "the broker must die with its parent (PR_SET_PDEATHSIG)"
    stale = [
        p
        for p in (cache_root() / "brokers").glob("*.json")
        if json.loads(p.read_text())["owner"] == child.pid
    ]
    assert stale, "the killed run left its registry entry behind"

    # A new broker on the very same (stale) data dir starts and works; the entry is reaped.
    with LocalKafka(data_dir=data_dir) as kafka:
        assert not any(p.exists() for p in stale)
        topic = f"after-kill-{uuid.uuid4().hex[:8]}"
        asyncio.run(_create_topic(kafka.bootstrap, topic, 1))
        asyncio.run(_produce(kafka.bootstrap, topic, [b"x"], "zstd"))
        # A broker SIGKILLed under a live owner: stop() copes and deregisters it.
        assert kafka.pid is not None
        os.kill(kafka.pid, signal.SIGKILL)
        entries = set((cache_root() / "brokers").glob("*.json"))
        kafka.stop()
        assert len(entries - set((cache_root() / "brokers").glob("*.json"))) == 1
        assert not kafka.running
    assert data_dir.is_dir(), "a caller-provided data dir is kept"


def test_reaper_only_touches_entries_of_dead_owners(tmp_path: Path) -> None:
    registry = cache_root() / "brokers"
    registry.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    bystander = subprocess.Popen(["sleep", "30"])  # a live non-Kafka process with a known pid
    me = os.getpid()
    entries: dict[str, tuple[Path, dict[str, object]]] = {
        "dead": (tmp_path / "d1", {"owner": dead.pid, "owner_start": "1", "pid": bystander.pid}),
        "alive": (
            tmp_path / "d2",
            {"owner": me, "owner_start": _broker._proc_start_time(me), "pid": 0},
        ),
    }
    try:
        for name, (path, info) in entries.items():
            path.mkdir()
            info.update(data_dir=str(path), remove=True)
            (registry / f"test-{name}-{me}.json").write_text(json.dumps(info))
        (registry / f"test-garbage-{me}.json").write_text("{")
        reap_stale_brokers()
        assert not (tmp_path / "d1").exists() and not (registry / f"test-dead-{me}.json").exists()
        assert bystander.poll() is None, "a reused pid that is not our broker is never killed"
        assert (tmp_path / "d2").exists() and (registry / f"test-alive-{me}.json").exists()
        assert not (registry / f"test-garbage-{me}.json").exists()
    finally:
        bystander.kill()
        bystander.wait()
        for name in ("dead", "alive", "garbage"):
            (registry / f"test-{name}-{me}.json").unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["JAVA points nowhere", "no java on PATH"])
def test_missing_java_is_a_clear_error(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "JAVA points nowhere":
        monkeypatch.setenv("JAVA", str(tmp_path / "no-such-java"))
    else:
        monkeypatch.delenv("JAVA", raising=False)
        monkeypatch.delenv("JAVA_HOME", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(BrokerError, match="Java 17"):
        LocalKafka().start()
    assert time.monotonic() - started < 5


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a cold cache
    monkeypatch.setenv("MVN", str(tmp_path / "no-such-mvn"))
    with pytest.raises(BrokerError, match="Maven"):
        fetch_kafka()


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(BrokerError, match="could not be fetched from Maven Central") as info:
        fetch_kafka("0.0.1-no-such-version")
    assert "kafka_2.13" in str(info.value)  # mvn's own words are shown
    home = tmp_path / "sms-pipeline" / "kafka-0.0.1-no-such-version"
    assert not (home / "COMPLETE").exists() and not (home / "libs").exists()


def test_half_finished_download_is_redone_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_libs = fetch_kafka()  # the shared cache, filled by the fixture broker's first start
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    home = tmp_path / "sms-pipeline" / f"kafka-{_broker.KAFKA_VERSION}"
    (home / "libs").mkdir(parents=True)
    (home / "libs" / "truncated.jar").write_text("half")  # an interrupted earlier run
    calls = tmp_path / "calls"
    fake_mvn = tmp_path / "mvn"  # copies the real jars instead of downloading them again
    fake_mvn.write_text(f"""#!/bin/sh
echo run >> {calls}
for arg; do case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac; done
cp -r {real_libs} "$out"
""")
    fake_mvn.chmod(0o755)
    monkeypatch.setenv("MVN", str(fake_mvn))
    libs = fetch_kafka()
    assert sorted(p.name for p in libs.iterdir()) == sorted(p.name for p in real_libs.iterdir())
    assert fetch_kafka() == libs
    assert calls.read_text().count("run") == 1, "a complete cache is not downloaded again"


def test_three_node_cluster_replicates_by_default(kafka_cluster: LocalCluster) -> None:
    """Every node of the cluster serves; a topic made with the broker's defaults (auto-created
    by a producer) has three replicas, all in sync, and min.insync.replicas 2; leaders and
    group coordinators are its nodes; a frozen node is stopped until thawed."""
    cluster, topic = kafka_cluster, f"rf-{uuid.uuid4().hex[:8]}"
    addresses = cluster.bootstrap.split(",")
    assert len(addresses) == 3 and cluster.node_ids == [1, 2, 3]

    async def scenario() -> None:
        for address in addresses:  # each node alone answers
            await _produce(address, topic, [address.encode()], "zstd")
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topic])
            (response,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
        finally:
            await admin.close()
        (partition,) = described["partitions"]
        assert sorted(partition["replicas"]) == [1, 2, 3]
        configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
        assert configs["min.insync.replicas"] == "2"
        await cluster.wait_in_sync()
        assert await cluster.leaders(topic) == {0: partition["leader"]}
        assert await cluster.coordinator(f"g-{uuid.uuid4().hex[:8]}") in cluster.node_ids

    asyncio.run(asyncio.wait_for(scenario(), 60))
    pid = cluster.pid(2)
    assert pid is not None
    cluster.freeze(2)
    try:
        assert cluster.frozen(2) and _broker._proc_state(pid) == "T"
    finally:
        cluster.thaw(2)
    assert not cluster.frozen(2) and _broker._proc_state(pid) in ("R", "S")
    with pytest.raises(BrokerError, match="node 4"):
        cluster.freeze(4)


def test_broker_command_refuses_a_secured_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        _broker.main(["--nodes", "3", "--secured"])
    assert exit_.value.code == 2
    assert "--secured runs one node" in capsys.readouterr().err


CLI = "from tools.broker import main; raise SystemExit(main())"


def test_broker_command_stops_cleanly_on_sigint_and_sigterm() -> None:
    procs = {
        sig: subprocess.Popen(
            [sys.executable, "-c", CLI],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        lines = {}
        for sig, proc in procs.items():
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 90)
            assert ready, "the broker command printed nothing"
            lines[sig] = proc.stdout.readline()
            assert "ready at 127.0.0.1:" in lines[sig], lines[sig]
        assert lines[signal.SIGINT] != lines[signal.SIGTERM]  # two at once: different ports/dirs
        for sig, proc in procs.items():
            proc.send_signal(sig)
            assert proc.wait(30) == 0
            data_dir = lines[sig].split("(data in ")[1].split(")")[0]
            assert not Path(data_dir).exists()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _pytest_in(tmp_path: Path, body: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # keeps our pyproject config out
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(body)
    environ = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")  # faster; conftest needs none
    environ["PYTHONPATH"] = str(CONFTEST.parents[1])  # the launcher: tools/ is not installed
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "test_sample.py",
        ],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_test_command_fails_when_a_test_fails(tmp_path: Path) -> None:
    assert _pytest_in(tmp_path, "def test_ok():\n    pass\n").returncode == 0
    result = _pytest_in(tmp_path, "def test_broken():\n    assert 1 == 2\n")
    assert result.returncode == 1 and "1 failed" in result.stdout


def test_test_command_fails_loudly_when_the_broker_cannot_start(tmp_path: Path) -> None:
    body = "def test_needs_kafka(kafka_bootstrap):\n    assert kafka_bootstrap\n"
    result = _pytest_in(
        tmp_path, body, KAFKA_BOOTSTRAP_SERVERS=None, JAVA=str(tmp_path / "no-such-java")
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "1 error" in output and "Java 17+ is required" in output, output
    assert "skipped" not in output
