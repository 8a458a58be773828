"""Start-up: an unreachable broker and bad settings end the processor quickly and clearly."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import Spawn, free_port, make_topics, run_args, scrape

pytestmark = [pytest.mark.kafka, pytest.mark.anyio]


async def test_unreachable_broker_exits_nonzero_naming_it(spawn: Spawn) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # bound and closed again: nothing listens there
    started = time.monotonic()
    proc = spawn(
        [
            "run",
            "--bootstrap-servers",
            bootstrap,
            "--input-topics",
            "in",
            "--output-topic",
            "out",
            "--dead-letter-topic",
            "dlq",
            "--group-id",
            "g",
            "--startup-timeout-s",
            "3",
            "--metrics-port",
            "0",
            "--log-level",
            "INFO",
        ]
    )
    code = await proc.wait(15)
    elapsed = time.monotonic() - started
    assert code != 0 and code > 0, code  # an exit status, not death by a signal
    assert 3 <= elapsed < 10, elapsed
    text = proc.text()
    assert f"Kafka at {bootstrap} not reachable after 3s" in text, text[-2000:]
    # It said it was waiting, in its JSON log, naming the address.
    waiting = proc.messages("waiting for Kafka")
    assert waiting and waiting[0]["bootstrap"] == bootstrap
    assert not any("Traceback" in d.get("raw", "") for d in proc.logs), text[-3000:]


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--batch-max-records", "0"], {}, ["batch_max_records", "flag --batch-max-records"]),
        (["--compression", "brotli"], {}, ["compression", "flag --compression"]),
        (
            [],
            {"PIPELINE_MAX_BATCHES_IN_FLIGHT": "0"},
            ["max_batches_in_flight", "env PIPELINE_MAX_BATCHES_IN_FLIGHT"],
        ),
        (["--metrics-port", "70000"], {}, ["metrics_port", "flag --metrics-port"]),
        (["--startup-timeout-s", "soon"], {}, ["startup_timeout_s"]),
        ([], {"PIPELINE_LINGER_MS": "-1"}, ["linger_ms", "env PIPELINE_LINGER_MS"]),
        (["--topic-map", "raw=acme"], {}, ["topic_map", "acme"]),
        (["--time-zones", "uspeedo=Mars/Olympus"], {}, ["time_zones", "Mars/Olympus"]),
    ],
    ids=[
        "zero-batch",
        "compression",
        "depth",
        "port",
        "not-a-number",
        "env",
        "topic-map",
        "zone",
    ],
)
async def test_bad_setting_exits_2_naming_it(
    spawn: Spawn, args: list[str], env: dict[str, str], names: list[str]
) -> None:
    proc = spawn(["run", "--bootstrap-servers", f"127.0.0.1:{free_port()}", *args], env)
    assert await proc.wait(10) == 2, proc.text()[-2000:]
    text = proc.text()
    assert "error:" in text
    for name in names:
        assert name in text, (name, text[-2000:])
    assert "Traceback" not in text, text[-3000:]


async def test_unknown_env_warns(kafka_bootstrap: str, spawn: Spawn) -> None:
    """The environment Kubernetes gives a pod behind a Service named `pipeline`: the unknown
    PIPELINE_* variables are warned about (JSON lines) and ignored, the processor runs, and
    its endpoint binds the address PIPELINE_METRICS_HOST names."""
    topics = await make_topics(kafka_bootstrap, "k8s-env", raw=1, out=1, dlq=1)
    env = {
        "PIPELINE_SERVICE_HOST": "10.96.0.12",
        "PIPELINE_SERVICE_PORT": "9108",
        "PIPELINE_PORT": "tcp://10.96.0.12:9108",
        "PIPELINE_PORT_9108_TCP_ADDR": "10.96.0.12",
        "PIPELINE_METRICS_HOST": "127.0.0.1",
    }
    proc = spawn(run_args(kafka_bootstrap, topics), env)
    port = await proc.metrics_port()
    assert proc.messages("metrics served")[0]["host"] == "127.0.0.1"
    await proc.wait_log("partitions assigned", timeout=40)
    warned = sorted(
        d["msg"]
        for d in proc.logs
        if d.get("logger") == "pipeline.config" and "ignoring" in d["msg"]
    )
    assert warned == [
        f"ignoring unknown environment variable {k}"
        for k in sorted(env)
        if k != "PIPELINE_METRICS_HOST"
    ], proc.text()[-2000:]
    deadline = time.monotonic() + 20
    while (await asyncio.to_thread(scrape, port, "/readyz"))[0] != 200:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert await proc.stop() == 0
    assert proc.crashes() == []
