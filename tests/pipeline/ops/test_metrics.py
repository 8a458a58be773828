"""pipeline.ops._metrics and pipeline.ops._endpoint: the families read from the core and window
(parsed back with prometheus_client's parser), closed label sets, the HTTP endpoint with its
probes, and the workers' single endpoint."""

from __future__ import annotations

import socket
import string
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core import LATENCY_BUCKETS, CoreStats, LifecycleCounters
from pipeline.core.providers import SKIP_KINDS
from pipeline.errors import DEAD_LETTER_CLASSES, ConfigError
from pipeline.ops import (
    MAX_CONNECTIONS,
    OTHER,
    Health,
    KafkaMetrics,
    PipelineCollector,
    bounded,
    consumer_lag,
    observe_kafka,
    serve_http,
    serve_unix,
    serve_workers,
)
from pipeline.state import Window
from schemas import PROVIDERS, STATUS_INDEX

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def series(text: str) -> Series:
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return series(text)[(name, tuple(sorted(labels.items())))]


class Observed:
    """Two cores and two windows (as a partitioned topology has), and a lag source."""

    def __init__(self) -> None:
        self.cores = [CoreStats(), CoreStats()]
        self.wins = [Window(1000, 60_000), Window(1000, 60_000)]
        self.behind: list[tuple[str, int, int]] = []
        self.counted = [LifecycleCounters(), LifecycleCounters()]

    def stats(self) -> list[CoreStats]:
        return self.cores

    def windows(self) -> list[Window]:
        return self.wins

    def lifecycles(self) -> list[LifecycleCounters]:
        return self.counted

    def lag(self) -> list[tuple[str, int, int]]:
        return self.behind


def render(metrics: KafkaMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_families_read_the_live_counters() -> None:
    obs = Observed()
    health = Health(30)
    m = observe_kafka(obs, health)
    a, b = obs.cores
    a.records_in["uspeedo"] += 3
    b.records_in["uspeedo"] += 2
    b.records_in["unknown"] += 1
    a.events_out["uspeedo", "DELIVERED"] += 4
    b.events_refused["uspeedo", "DELIVERED"] += 1
    a.dead_letters["MalformedBody"] += 1
    b.skipped["tencent.reply"] += 2
    obs.wins[0].counters.duplicates[0] += 5
    obs.wins[1].counters.duplicates[0] += 1
    obs.wins[1].counters.stale[4] += 7
    obs.wins[1].counters.clock_skew += 9
    obs.behind = [("raw", 0, 12), ("raw", 3, 0)]
    m.on_commit([0.002, 0.004], 0.02)
    m.on_restore(1.5, 1234)
    text = render(m)
    assert value(text, "pipeline_records_in_total", provider="uspeedo") == 5  # summed over cores
    assert value(text, "pipeline_records_in_total", provider="unknown") == 1
    assert value(text, "pipeline_events_out_total", provider="uspeedo", status="DELIVERED") == 4
    assert value(text, "pipeline_events_refused_total", provider="uspeedo", status="DELIVERED") == 1
    assert value(text, "pipeline_dead_letters_total", error_class="MalformedBody") == 1
    assert value(text, "pipeline_skipped_total", kind="tencent.reply") == 2
    assert value(text, "pipeline_duplicates_total", provider=PROVIDERS[0]) == 6
    assert value(text, "pipeline_stale_total", provider=PROVIDERS[4]) == 7
    assert value(text, "pipeline_clock_skew_total") == 9
    assert value(text, "pipeline_consumer_lag", topic="raw", partition="0") == 12
    assert value(text, "pipeline_consumer_lag", topic="raw", partition="3") == 0
    # One commit of two batches: each batch's time, the commit once.
    assert value(text, "pipeline_batches_total") == 2
    assert value(text, "pipeline_batch_seconds_bucket", le="0.0025") == 1
    assert value(text, "pipeline_batch_seconds_count") == 2
    assert value(text, "pipeline_commit_seconds_count") == 1
    assert value(text, "pipeline_restore_seconds_sum") == 1.5
    assert value(text, "pipeline_restore_records_total") == 1234
    assert value(text, "pipeline_live") == 1 and value(text, "pipeline_ready") == 0
    a.records_in["uspeedo"] += 10  # scrape time reads the counters, nothing is copied before
    assert value(render(m), "pipeline_records_in_total", provider="uspeedo") == 15


def test_metric_names_and_types() -> None:
    """The names the README lists, with their types and labels (dashboards depend on them)."""
    families = {
        f.name: f for f in text_string_to_metric_families(render(observe_kafka(Observed())))
    }
    expected = {
        "pipeline_records_in": "counter",
        "pipeline_receipts_in": "counter",
        "pipeline_events_out": "counter",
        "pipeline_events_refused": "counter",
        "pipeline_duplicates": "counter",
        "pipeline_stale": "counter",
        "pipeline_dead_letters": "counter",
        "pipeline_skipped": "counter",
        "pipeline_unmapped_status": "counter",
        "pipeline_unparsed_times": "counter",
        "pipeline_window_messages": "gauge",
        "pipeline_window_evicted_by_count": "counter",
        "pipeline_window_expired": "counter",
        "pipeline_clock_skew": "counter",
        "pipeline_batch_seconds": "histogram",
        "pipeline_commit_seconds": "histogram",
        "pipeline_consumer_lag": "gauge",
        "pipeline_batches": "counter",
        "pipeline_restore_seconds": "histogram",
        "pipeline_restore_records": "counter",
        "pipeline_finals": "counter",
        "pipeline_conflicts": "counter",
        "pipeline_timeouts": "counter",
        "pipeline_evicted_before_final": "counter",
        "pipeline_delivery_latency_seconds": "histogram",
    }
    assert {n: f.type for n, f in families.items()} == expected


def test_lifecycle_families_sum_the_stages_and_bound_their_labels() -> None:
    obs = Observed()
    a, b = obs.counted
    a.finals["yunpian", "DELIVERED"] += 3
    b.finals["yunpian", "DELIVERED"] += 1
    b.finals["nobody", "HAPPY"] += 1  # not from the closed sets: `other`
    a.conflicts["tencent"] += 2
    b.timed_out["uspeedo"] += 4
    a.forgotten["smspartner"] += 1
    a.latency["yunpian"][0] += 2  # under 1 s
    b.latency["yunpian"][-1] += 1  # above the last bucket
    a.latency_sum["yunpian"] += 100_000.5
    text = render(observe_kafka(obs))
    assert value(text, "pipeline_finals_total", provider="yunpian", status="DELIVERED") == 4
    assert value(text, "pipeline_finals_total", provider=OTHER, status=OTHER) == 1
    assert value(text, "pipeline_conflicts_total", provider="tencent") == 2
    assert value(text, "pipeline_timeouts_total", provider="uspeedo") == 4
    assert value(text, "pipeline_evicted_before_final_total", provider="smspartner") == 1
    bucket = "pipeline_delivery_latency_seconds_bucket"
    assert value(text, bucket, provider="yunpian", le="1.0") == 2
    assert value(text, bucket, provider="yunpian", le=f"{float(LATENCY_BUCKETS[-1])}") == 2
    assert value(text, bucket, provider="yunpian", le="+Inf") == 3
    assert value(text, "pipeline_delivery_latency_seconds_count", provider="tencent") == 0
    assert value(text, "pipeline_delivery_latency_seconds_sum", provider="yunpian") == 100_000.5


def test_no_created_series() -> None:
    assert "_created" not in render(observe_kafka(Observed()))


def test_bounded_maps_unknown_values_to_other() -> None:
    allowed = (frozenset({"a", "b"}), frozenset({"x"}))
    got = bounded({("a", "x"): 1, ("a", "evil"): 2, ("zz", "x"): 3, ("yy", "x"): 4}, allowed)
    assert got == {("a", "x"): 1, ("a", OTHER): 2, (OTHER, "x"): 7}
    assert bounded({"b": 1, "q": 2}, allowed[:1]) == {("b",): 1, (OTHER,): 2}


def test_error_classes_are_the_decode_errors() -> None:
    from pipeline.errors import UnreadableRecord

    classes = DEAD_LETTER_CLASSES
    assert {"MalformedBody", "BodyTooLarge", "PartialBody", "EventTooLarge"} <= classes
    assert UnreadableRecord.__name__ in classes


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1), st.text(min_size=1), st.integers(1, 5)),
        min_size=50,
        max_size=400,
    )
)
def test_metrics_series_bounded(values: list[tuple[str, str, int]]) -> None:
    """Attacker-chosen provider, status, error-class and skip-kind values: every label value
    is from its closed set (so the series count has a bound whatever the input), and nothing
    is lost (the sums)."""
    obs = Observed()
    m = observe_kafka(obs)
    stats = obs.cores[0]
    for a, b, n in values:
        stats.records_in[a] += n
        stats.events_out[a, b] += n
        stats.events_refused[a, b] += n
        stats.dead_letters[b] += n
        stats.skipped[a + b] += n
    got = series(render(m))
    providers = {*PROVIDERS, "unknown", OTHER}
    allowed = {
        "provider": providers,
        "status": {*STATUS_INDEX, OTHER},
        "error_class": {*DEAD_LETTER_CLASSES, OTHER},
        "kind": {*SKIP_KINDS, OTHER},
    }
    for name, labels in got:
        for label, v in labels:
            if label in allowed:
                assert v in allowed[label], (name, label, v)
    bound = (
        len(providers) * (2 + 2 * len(allowed["status"]))
        + len(allowed["error_class"])
        + len(allowed["kind"])
    )
    core = ("records_in", "events_out", "events_refused", "dead_letters", "skipped")
    assert (
        sum(1 for n, _ in got if n.removeprefix("pipeline_").removesuffix("_total") in core)
        <= bound
    )
    total = sum(n for _, _, n in values)
    for name in core:
        assert sum(v for (n, _), v in got.items() if n == f"pipeline_{name}_total") == total


def test_distinct_skip_kinds_one_series() -> None:
    obs = Observed()
    m = observe_kafka(obs)
    for i in range(20_000):
        obs.cores[0].skipped[f"ultiroam.{i}"] += 1
    skipped = {k: v for k, v in series(render(m)).items() if k[0] == "pipeline_skipped_total"}
    assert skipped == {("pipeline_skipped_total", (("kind", OTHER),)): 20_000}


class _TP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


class _Consumer:
    def __init__(self, highs: dict[Any, int | None]) -> None:
        self.highs = highs

    def assignment(self) -> set[Any]:
        return set(self.highs)

    def highwater(self, tp: Any) -> int | None:
        if tp.topic == "revoked":  # as aiokafka, when a rebalance ran between the two calls
            raise AssertionError("Partition is not assigned")
        return self.highs[tp]


def test_consumer_lag() -> None:
    t0, t1, t2 = _TP("in", 0), _TP("in", 1), _TP("in", 2)
    gone = _TP("revoked", 0)
    consumer = _Consumer({t0: 100, t1: None, t2: 5, gone: 1})
    got = sorted(consumer_lag(consumer, {t0: 60, t1: 3, t2: 9, gone: 0}))
    assert got == [("in", 0, 40), ("in", 2, 0)]  # no high watermark yet: no series


def test_second_collector_of_same_names_refused() -> None:
    m = observe_kafka(Observed())
    with pytest.raises(ValueError):
        m.registry.register(PipelineCollector(Observed()))


# ---------------------------------------------------------------------------------- HTTP


def get(port: int, path: str, method: str = "GET") -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


def test_endpoint_serves_metrics_livez_readyz(clock: list[float]) -> None:
    health = Health(30, clock=lambda: clock[0])
    obs = Observed()
    obs.cores[0].records_in["yunpian"] += 2
    m = observe_kafka(obs, health)
    with serve_http(m.registry, health, "127.0.0.1", 0) as port:
        status, body, headers = get(port, "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert value(body, "pipeline_records_in_total", provider="yunpian") == 2
        assert get(port, "/livez")[:2] == (200, "starting\n")
        assert get(port, "/readyz")[:2] == (503, "not started\n")
        health.beat()
        health.set_ready(True)
        assert get(port, "/livez")[:2] == (200, "ok\n")
        assert get(port, "/readyz")[:2] == (200, "ok\n")
        clock[0] += 31  # wedged: no beat, no idle poll
        status, body, _ = get(port, "/livez")
        assert status == 503 and "no progress for 31s" in body
        health.idle()
        assert get(port, "/livez")[:2] == (200, "idle\n")
        health.set_ready(False)  # revoked, waiting for the new assignment
        assert get(port, "/readyz")[0] == 503
        assert get(port, "/nope")[0] == 404
        status, _, headers = get(port, "/livez", method="POST")
        assert status == 405 and headers["Allow"] == "GET"


def test_endpoint_survives_bad_clients_and_failing_parts() -> None:
    class Broken(Observed):
        def lag(self) -> list[tuple[str, int, int]]:
            raise RuntimeError("boom")

    class BrokenHealth(Health):
        def ready(self) -> tuple[bool, str]:
            raise RuntimeError("boom")

    health = BrokenHealth(30)
    m = observe_kafka(Broken(), health)
    with serve_http(m.registry, health, "127.0.0.1", 0) as port:
        # One client says nothing, another sends garbage: others are served meanwhile.
        with socket.create_connection(("127.0.0.1", port)) as idle:
            assert get(port, "/livez")[0] == 200
            with socket.create_connection(("127.0.0.1", port)) as bad:
                bad.sendall(b"\x00\xff garbage\r\n\r\n")
                bad.settimeout(5)
                assert b"400" in bad.recv(1000)  # Bad request
            idle.sendall(b"GET /livez HTTP/1.0\r\n\r\n")
            idle.settimeout(5)
            assert b" 200 " in idle.recv(100)
        assert get(port, "/metrics")[0] == 500  # a failing source fails the scrape, loudly
        status, body, _ = get(port, "/readyz")
        assert status == 503 and "RuntimeError" in body
        assert get(port, "/livez")[0] == 200


def test_connection_flood_is_shed() -> None:
    health = Health(30)
    with serve_http(CollectorRegistry(), health, "127.0.0.1", 0) as port:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
        try:
            deadline = time.monotonic() + 5
            while True:  # the slots are taken once the server accepted them all
                with socket.create_connection(("127.0.0.1", port)) as extra:
                    extra.settimeout(5)
                    if extra.recv(100) == b"":  # closed unserved
                        break
                assert time.monotonic() < deadline
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 5
        while True:  # slots come back as the idle clients go
            try:
                if get(port, "/livez")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_metrics_host_binds_that_address() -> None:
    registry = CollectorRegistry()
    health = Health(30)
    with serve_http(registry, health, "127.0.0.2", 0) as port:
        with socket.create_connection(("127.0.0.2", port), timeout=5):
            pass
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


# ------------------------------------------------------------------------------- workers


def test_workers_one_endpoint() -> None:
    """Two workers serving their expositions on private sockets; the parent's one endpoint
    has every worker's series with a `worker` label, and its probes are all workers'."""
    workers = [Observed(), Observed()]
    healths = [Health(30), Health(30)]
    workers[0].cores[0].records_in["tencent"] += 3
    workers[1].cores[0].records_in["tencent"] += 4
    with serve_workers(2, "127.0.0.1", 0) as (paths, port):
        assert len(set(paths)) == 2
        status, body, _ = get(port, "/metrics")
        assert status == 200
        assert value(body, "pipeline_worker_up", worker="0") == 0  # not started yet
        assert get(port, "/readyz")[0] == 503
        regs = [observe_kafka(w, h).registry for w, h in zip(workers, healths, strict=True)]
        with serve_unix(regs[0], paths[0]), serve_unix(regs[1], paths[1]):
            body = get(port, "/metrics")[1]
            assert value(body, "pipeline_records_in_total", provider="tencent", worker="0") == 3
            assert value(body, "pipeline_records_in_total", provider="tencent", worker="1") == 4
            assert value(body, "pipeline_worker_up", worker="1") == 1
            assert value(body, "pipeline_batch_seconds_count", worker="1") == 0
            assert get(port, "/livez")[0] == 200
            assert get(port, "/readyz")[:2] == (503, "worker 0 not ready; worker 1 not ready\n")
            for h in healths:
                h.set_ready(True)
            assert get(port, "/readyz")[:2] == (200, "ok\n")
            healths[1].beat()
            healths[1].bound_s = -1  # worker 1 wedged
            status, body, _ = get(port, "/livez")
            assert (status, body) == (503, "worker 1 not live\n")
        assert get(port, "/readyz")[0] == 503  # workers gone
    assert not Path(paths[0]).parent.exists()  # the private directory is removed


def test_worker_socket_directory_is_private() -> None:
    with serve_workers(1, "127.0.0.1", 0) as (paths, _):
        assert Path(paths[0]).parent.stat().st_mode & 0o077 == 0


def test_label_escaping_survives_the_merge() -> None:
    """A label value with quotes and newlines (a topic name can hold dots and dashes only,
    but the parser must not be the weak link) goes through worker → parent intact."""
    obs = Observed()
    obs.behind = [("in-" + string.punctuation.replace("\\", ""), 1, 5)]
    with (
        serve_workers(1, "127.0.0.1", 0) as (paths, port),
        serve_unix(observe_kafka(obs).registry, paths[0]),
    ):
        body = get(port, "/metrics")[1]
    topic = obs.behind[0][0]
    assert value(body, "pipeline_consumer_lag", topic=topic, partition="1", worker="0") == 5


def test_a_metrics_port_in_use_is_a_setting_to_fix() -> None:
    """Not an OSError traceback: a ConfigError (exit 2) naming the setting and the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(ConfigError, match=rf"metrics_port: cannot listen on 127.0.0.1:{port}"),
            serve_http(CollectorRegistry(), Health(30), "127.0.0.1", port),
        ):
            pass
