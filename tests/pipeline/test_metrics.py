"""pipeline._metrics: exposition format (parsed back), the HTTP server, JSON logging."""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketStream
from hypothesis import given
from hypothesis import strategies as st

from pipeline._metrics import (
    Counter,
    Gauge,
    Histogram,
    JsonFormatter,
    Registry,
    Sample,
    configure_logging,
    counter_collector,
    gauge_collector,
    serve_metrics,
    standard_metrics,
)

# ------------------------------------------------------------------ a small exposition parser

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_HELP = re.compile(rf"# HELP ({_NAME}) (.*)")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)")
_SAMPLE = re.compile(rf"({_NAME})(?:\{{(.*)\}})? (\S+)")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Key = tuple[str, tuple[tuple[str, str], ...]]


class Family:
    def __init__(self, name: str, help_text: str, kind: str) -> None:
        self.name, self.help, self.kind = name, help_text, kind
        self.samples: dict[Key, float] = {}
        self.order: list[Key] = []


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _PAIR.match(text, pos)
        assert m, f"bad labels at {text[pos:]!r}"
        value = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group()], m.group(2))
        out.append((m.group(1), value))
        pos = m.end()
    assert len({k for k, _ in out}) == len(out), "duplicate label"
    return tuple(out)


def _value(text: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    return special[text] if text in special else float(text)


def parse(body: bytes) -> dict[str, Family]:
    """Strict enough for our output: HELP then TYPE then samples, each family exactly once."""
    text = body.decode()
    assert text == "" or text.endswith("\n")
    families: dict[str, Family] = {}
    current: Family | None = None
    pending_help: tuple[str, str] | None = None
    for line in text.split("\n")[:-1]:  # only \n ends a line: a raw \r is a legal label byte
        if m := _HELP.fullmatch(line):
            assert pending_help is None and m.group(1) not in families
            help_text = re.sub(r"\\[\\n]", lambda e: _UNESCAPE[e.group()], m.group(2))
            pending_help = (m.group(1), help_text)
        elif m := _TYPE.fullmatch(line):
            assert pending_help and pending_help[0] == m.group(1), line
            current = families[m.group(1)] = Family(m.group(1), pending_help[1], m.group(2))
            pending_help = None
        elif m := _SAMPLE.fullmatch(line):
            assert current is not None and pending_help is None, line
            name = m.group(1)
            allowed = {current.name}
            if current.kind == "histogram":
                allowed = {current.name + s for s in ("_bucket", "_sum", "_count")}
            assert name in allowed, line
            key = (name, _labels(m.group(2) or ""))
            assert key not in current.samples, f"duplicate series {line}"
            current.samples[key] = _value(m.group(3))
            current.order.append(key)
        else:
            raise AssertionError(f"unparseable line {line!r}")
    return families


def value(families: dict[str, Family], name: str, **labels: str) -> float:
    """One sample's value; `name` may be a histogram's _bucket/_sum/_count series."""
    family = families.get(name) or families[re.sub(r"_(bucket|sum|count)$", "", name)]
    return family.samples[(name, tuple(labels.items()))]


# ------------------------------------------------------------------------------ registry


def test_counter_and_gauge_render() -> None:
    reg = Registry()
    c = reg.counter("jobs_total", "Jobs done.", ("provider", "status"))
    g = reg.gauge("lag", "Lag.", ("topic", "partition"))
    plain = reg.counter("batches_total", "Batches.")
    c.inc(("a", "ok"))
    c.inc(("a", "ok"), 4)
    c.inc(("b", "failed"), 0.5)
    g.set(("t", "0"), 12)
    g.set(("t", "1"), 3)
    g.set(("t", "1"), 7)
    g.inc(("t", "2"))
    g.remove(("t", "2"))
    plain.inc()
    fams = parse(reg.render())
    assert fams["jobs_total"].kind == "counter" and fams["jobs_total"].help == "Jobs done."
    assert value(fams, "jobs_total", provider="a", status="ok") == 5
    assert value(fams, "jobs_total", provider="b", status="failed") == 0.5
    assert fams["lag"].kind == "gauge"
    assert value(fams, "lag", topic="t", partition="0") == 12
    assert value(fams, "lag", topic="t", partition="1") == 7
    assert len(fams["lag"].samples) == 2
    assert value(fams, "batches_total") == 1
    assert b"batches_total 1\n" in reg.render()  # integral values print without ".0"


def test_empty_metric_still_has_help_and_type() -> None:
    reg = Registry()
    reg.counter("nothing_total", "Nothing yet.", ("x",))
    assert reg.render() == b"# HELP nothing_total Nothing yet.\n# TYPE nothing_total counter\n"


def test_label_and_help_escaping() -> None:
    reg = Registry()
    c = reg.counter("esc_total", 'Help with \\ backslash, "quotes"\nand newline.', ("v",))
    nasty = 'a\\b"c\nd}e,f="g'
    c.inc((nasty,), 2)
    body = reg.render()
    assert b'esc_total{v="a\\\\b\\"c\\nd}e,f=\\"g"} 2\n' in body
    assert b'# HELP esc_total Help with \\\\ backslash, "quotes"\\nand newline.\n' in body
    fams = parse(body)
    assert fams["esc_total"].help == 'Help with \\ backslash, "quotes"\nand newline.'
    assert value(fams, "esc_total", v=nasty) == 2


@given(st.lists(st.text(), min_size=1, max_size=5, unique=True))
def test_label_values_round_trip(values: list[str]) -> None:
    reg = Registry()
    g = reg.gauge("rt", "Round trip.", ("v",))
    for i, v in enumerate(values):
        g.set((v,), i)
    fams = parse(reg.render())
    assert {k[1][0][1]: x for k, x in fams["rt"].samples.items()} == {
        v: i for i, v in enumerate(values)
    }


def test_histogram_buckets_cumulative() -> None:
    reg = Registry()
    h = reg.histogram("lat_seconds", "Latency.", (0.01, 0.1, 1))
    for v in (0.005, 0.01, 0.05, 0.1, 0.5, 3, 7):
        h.observe(v)
    fams = parse(reg.render())
    fam = fams["lat_seconds"]
    assert fam.kind == "histogram"
    buckets = [(k[1], x) for k, x in fam.samples.items() if k[0] == "lat_seconds_bucket"]
    assert [dict(lbl)["le"] for lbl, _ in buckets] == ["0.01", "0.1", "1", "+Inf"]
    counts = [x for _, x in buckets]
    assert counts == [2, 4, 5, 7]  # le is inclusive: 0.01 and 0.1 fall in their own bucket
    assert counts == sorted(counts)
    assert counts[-1] == value(fams, "lat_seconds_count") == 7
    assert value(fams, "lat_seconds_sum") == pytest.approx(10.665)


@given(st.lists(st.floats(min_value=0, max_value=100), max_size=50))
def test_histogram_invariants(observations: list[float]) -> None:
    reg = Registry()
    h = reg.histogram("h_seconds", "H.", (0.5, 1, 5, 50), ("op",))
    for v in observations:
        h.observe(v, ("x",))
    fams = parse(reg.render())
    if not observations:
        assert fams["h_seconds"].samples == {}
        return
    buckets = [x for k, x in fams["h_seconds"].samples.items() if k[0] == "h_seconds_bucket"]
    assert buckets == sorted(buckets)
    assert buckets[-1] == value(fams, "h_seconds_count", op="x") == len(observations)
    for bound, count in zip((0.5, 1, 5, 50), buckets, strict=False):
        assert count == sum(1 for v in observations if v <= bound)


def test_histogram_timer() -> None:
    reg = Registry()
    h = reg.histogram("t_seconds", "T.", (10,))
    with h.time():
        pass
    assert value(parse(reg.render()), "t_seconds_count") == 1


def test_validation() -> None:
    reg = Registry()
    c = reg.counter("ok_total", "Ok.", ("a",))
    with pytest.raises(ValueError):
        c.inc(("x", "y"))
    with pytest.raises(ValueError):
        c.inc(("x",), -1)
    with pytest.raises(ValueError):
        reg.counter("ok_total", "Again.")
    with pytest.raises(ValueError):
        reg.counter("bad-name", "Bad.")
    with pytest.raises(ValueError):
        reg.counter("x_total", "Bad label.", ("__reserved",))
    with pytest.raises(ValueError):
        Histogram("h", "H.", (1, 0.5))
    with pytest.raises(ValueError):
        Histogram("h", "H.", (1,), ("le",))
    reg.histogram("h", "H.")
    with pytest.raises(ValueError):
        reg.gauge("h_count", "Clashes with the histogram's samples.")
    with pytest.raises(ValueError):
        Gauge("g", "G.", ("a",)).set((), 1)


def test_attached_sources_and_collectors() -> None:
    reg = Registry()
    records: collections.Counter[str] = collections.Counter({"uspeedo": 3})
    events: collections.Counter[tuple[str, str]] = collections.Counter({("uspeedo", "ok"): 2})
    c = reg.counter("records_total", "Records.", ("provider",))
    c.attach(lambda: records)
    c.inc(("uspeedo",), 10)  # own bookkeeping adds to the source
    reg.add_collector(
        counter_collector("events_total", "Events.", ("provider", "status"), lambda: events)
    )
    reg.add_collector(gauge_collector("window_size", "Size.", (), lambda: {(): 42}))
    reg.add_collector(lambda: [Sample("custom", "untyped", "Custom.", {"k": 'q"uote'}, 1.5)])
    records["uspeedo"] += 1
    events[("other", "failed")] += 1  # scrape time reads the live counters
    fams = parse(reg.render())
    assert value(fams, "records_total", provider="uspeedo") == 14
    assert value(fams, "events_total", provider="uspeedo", status="ok") == 2
    assert value(fams, "events_total", provider="other", status="failed") == 1
    assert fams["events_total"].kind == "counter"
    assert value(fams, "window_size") == 42 and fams["window_size"].kind == "gauge"
    assert value(fams, "custom", k='q"uote') == 1.5


def test_collector_clash_fails_loudly() -> None:
    reg = Registry()
    reg.counter("a_total", "A.")
    reg.add_collector(counter_collector("a_total", "A again.", (), lambda: {(): 1}))
    with pytest.raises(ValueError):
        reg.render()
    reg2 = Registry()
    reg2.add_collector(counter_collector("b_total", "B.", ("x",), lambda: {("1", "2"): 1}))
    with pytest.raises(ValueError):
        reg2.render()


def test_standard_metrics_names() -> None:
    reg = Registry()
    m = standard_metrics(reg)
    m.events_out.inc(("uspeedo", "delivered"), 3)
    m.consumer_lag.set(("in", "0"), 5)
    m.batch_seconds.observe(0.002)
    m.commit_seconds.observe(0.02)
    m.window_messages.attach(lambda: {(): 9})
    m.batches.inc()
    fams = parse(reg.render())
    expected = {
        "pipeline_records_in_total": ("counter", ("provider",)),
        "pipeline_receipts_in_total": ("counter", ("provider",)),
        "pipeline_events_out_total": ("counter", ("provider", "status")),
        "pipeline_duplicates_total": ("counter", ("provider",)),
        "pipeline_stale_total": ("counter", ("provider",)),
        "pipeline_dead_letters_total": ("counter", ("error_class",)),
        "pipeline_skipped_total": ("counter", ("kind",)),
        "pipeline_unmapped_status_total": ("counter", ("provider",)),
        "pipeline_window_messages": ("gauge", ()),
        "pipeline_window_evicted_by_count_total": ("counter", ("provider",)),
        "pipeline_window_expired_total": ("counter", ("provider",)),
        "pipeline_batch_seconds": ("histogram", ()),
        "pipeline_commit_seconds": ("histogram", ()),
        "pipeline_consumer_lag": ("gauge", ("topic", "partition")),
        "pipeline_batches_total": ("counter", ()),
    }
    assert {n: f.kind for n, f in fams.items()} == {n: k for n, (k, _) in expected.items()}
    metrics = {n: getattr(m, f) for f in m.__dataclass_fields__ for n in [getattr(m, f).name]}
    assert {n: metric.label_names for n, metric in metrics.items()} == {
        n: labels for n, (_, labels) in expected.items()
    }
    assert value(fams, "pipeline_events_out_total", provider="uspeedo", status="delivered") == 3
    assert value(fams, "pipeline_window_messages") == 9
    assert value(fams, "pipeline_batch_seconds_bucket", le="0.0025") == 1
    assert isinstance(m.records_in, Counter)


# ---------------------------------------------------------------------------------- HTTP


@pytest.fixture(params=["asyncio", pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param  # production runs on uvloop; plain asyncio is what tests elsewhere use


@asynccontextmanager
async def running(
    reg: Registry, health: Callable[[], tuple[bool, str]], read_timeout: float = 5.0
) -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        port = await tg.start(
            functools.partial(serve_metrics, read_timeout=read_timeout), reg, 0, "127.0.0.1", health
        )
        yield port
        tg.cancel_scope.cancel()


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(raw)
            data = b""
            try:
                while True:
                    data += await s.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 ")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body) or raw.startswith(b"HEAD")
    assert headers["Connection"] == "close"
    return int(lines[0].split()[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n".encode()


@pytest.mark.anyio
async def test_server_routes() -> None:
    reg = Registry()
    reg.counter("hits_total", "Hits.", ("p",)).inc(("a",), 3)
    state: tuple[bool, str] = (True, "")
    async with running(reg, lambda: state) as port:
        assert port > 0
        status, headers, body = await request(port, get("/metrics"))
        assert status == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert value(parse(body), "hits_total", p="a") == 3
        status, _, _ = await request(port, get("/metrics?name[]=x"))
        assert status == 200
        status, _, body = await request(port, get("/healthz"))
        assert (status, body.strip()) == (200, b"ok")
        state = (False, "consumer not assigned")
        status, _, body = await request(port, get("/healthz"))
        assert (status, body.strip()) == (503, b"consumer not assigned")
        status, _, _ = await request(port, get("/nope"))
        assert status == 404
        status, headers, _ = await request(port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        status, headers, body = await request(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.anyio
async def test_server_survives_bad_clients() -> None:
    reg = Registry()
    reg.counter("hits_total", "Hits.").inc()

    def broken_health() -> tuple[bool, str]:
        raise RuntimeError("boom")

    async with running(reg, broken_health, read_timeout=0.3) as port:
        # A client that connects and says nothing: others are served meanwhile, and it is
        # dropped (with a 408) after the read timeout.
        async with await anyio.connect_tcp("127.0.0.1", port) as idle:
            status, _, _ = await request(port, get("/metrics"))
            assert status == 200
            with anyio.fail_after(3):
                reply = b""
                try:
                    while True:
                        reply += await idle.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
            assert reply.startswith(b"HTTP/1.1 408 ")
        status, _, _ = await request(port, b"\x00\xff\xfegarbage\r\n\r\n")
        assert status == 400
        status, _, _ = await request(port, b"GET /metrics SPDY/9\r\n\r\n")
        assert status == 400
        status, _, _ = await request(port, b"GET /" + b"a" * 20000)
        assert status == 431
        # Connect and hang up at once, and half a request then hang up.
        async with await anyio.connect_tcp("127.0.0.1", port):
            pass
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(b"GET /metr")
        status, _, body = await request(port, get("/healthz"))
        assert status == 503 and b"RuntimeError" in body
        status, _, body = await request(port, get("/metrics"))
        assert status == 200 and b"hits_total 1\n" in body


@pytest.mark.anyio
async def test_render_failure_is_500() -> None:
    reg = Registry()
    reg.add_collector(lambda: [Sample("bad name", "gauge", "x", {}, 1)])
    async with running(reg, lambda: (True, "")) as port:
        status, _, _ = await request(port, get("/metrics"))
        assert status == 500
        status, _, _ = await request(port, get("/healthz"))
        assert status == 200


@pytest.mark.anyio
async def test_accept_error_does_not_end_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from anyio._backends import _asyncio

    real = _asyncio.TCPSocketListener.accept
    failures = [OSError(24, "Too many open files")]

    async def flaky(self: _asyncio.TCPSocketListener) -> SocketStream:
        stream = await real(self)
        if failures:
            await stream.aclose()
            raise failures.pop()
        return stream

    monkeypatch.setattr(_asyncio.TCPSocketListener, "accept", flaky)
    async with running(Registry(), lambda: (True, "")) as port:
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, AssertionError)):
            await request(port, get("/healthz"))  # this one is lost to the failed accept
        status, _, _ = await request(port, get("/healthz"))  # after the back-off
        assert status == 200


# ------------------------------------------------------------------------------- logging


@pytest.fixture
def restore_pipeline_logger() -> Iterator[None]:
    logger = logging.getLogger("pipeline")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_json_logging(capsys: pytest.CaptureFixture[str], restore_pipeline_logger: None) -> None:
    configure_logging("info")
    configure_logging("INFO")  # idempotent: one handler, not two
    log = logging.getLogger("pipeline.loop")
    log.debug("not shown")
    log.info("assigned %d partitions", 3, extra={"topic": "receipts", "partitions": [0, 1, 2]})
    try:
        raise RuntimeError("commit\nfailed")
    except RuntimeError:
        log.exception("commit failed", extra={"level": "clash", "obj": object()})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["level"] == "INFO" and first["logger"] == "pipeline.loop"
    assert first["msg"] == "assigned 3 partitions"
    assert first["topic"] == "receipts" and first["partitions"] == [0, 1, 2]
    assert second["level"] == "ERROR" and second["extra_level"] == "clash"
    assert "RuntimeError: commit\nfailed" in second["exc"]
    assert second["obj"].startswith("<object object")


def test_json_formatter_degrades_on_unencodable() -> None:
    record = logging.LogRecord("pipeline", logging.WARNING, "f", 1, "big", None, None)
    record.huge = 1 << 70
    doc = json.loads(JsonFormatter().format(record))
    assert doc["huge"] == str(1 << 70) and doc["level"] == "WARNING"


def test_unknown_level_rejected(restore_pipeline_logger: None) -> None:
    with pytest.raises(ValueError):
        configure_logging("LOUD")
