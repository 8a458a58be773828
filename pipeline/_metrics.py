"""Observability of the stream processor: Prometheus metrics, `/metrics` + `/healthz`, JSON logs.

Metrics are a tiny registry of our own rendering the Prometheus text exposition format 0.0.4.
Counters that already live elsewhere (the core's and the window's `collections.Counter`s) are
not counted twice: a metric can `attach` a source read at scrape time, and `Registry.add_collector`
takes arbitrary callbacks. Everything here runs on the event loop thread and is not thread-safe.

Logging: `configure_logging` makes the `pipeline` logger write one JSON object per line. The loop
logs events worth logging — start, partition assignment and revocation, commit failures, shutdown —
and never anything per receipt or per record: those are what the counters are for.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, NamedTuple, Protocol, TextIO, TypeVar

import anyio
import orjson
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

__all__ = [
    "BATCH_BUCKETS",
    "COMMIT_BUCKETS",
    "Collector",
    "Counter",
    "Gauge",
    "Histogram",
    "JsonFormatter",
    "LabelledValues",
    "PipelineMetrics",
    "Registry",
    "Sample",
    "configure_logging",
    "counter_collector",
    "gauge_collector",
    "serve_metrics",
    "standard_metrics",
]

_log = logging.getLogger("pipeline.metrics")

# ---------------------------------------------------------------------------------------- metrics

MetricType = Literal["counter", "gauge", "untyped"]
Labels = tuple[str, ...]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

BATCH_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
COMMIT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Sample(NamedTuple):
    """One exported value, as returned by a collector."""

    name: str
    type: MetricType
    help: str
    labels: Mapping[str, str]
    value: float


Collector = Callable[[], Iterable[Sample]]


class LabelledValues(Protocol):
    """Anything with `items()` of label values → number: `collections.Counter[str]`,
    `Counter[tuple[str, str]]`, a dict. A `str` key stands for a single label value."""

    def items(self) -> Iterable[tuple[str | tuple[str, ...], float]]: ...


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid metric name {name!r}")
    return name


def _check_label_names(names: Iterable[str]) -> Labels:
    out = tuple(names)
    for n in out:
        if not _LABEL.fullmatch(n) or n.startswith("__"):
            raise ValueError(f"invalid label name {n!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate label names in {out}")
    return out


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    # The spec escapes only backslash and newline in HELP, not double quotes.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _fmt(value: float) -> str:
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _label_str(names: Labels, values: Iterable[object], extra: str = "") -> str:
    # str() because a caller may well pass a partition number as an int.
    parts = [f'{n}="{_escape_label(str(v))}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _header(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {_escape_help(help_text)}\n# TYPE {name} {kind}\n")


def _read_source(source: LabelledValues, name: str, arity: int) -> Iterable[tuple[Labels, float]]:
    for key, value in list(source.items()):
        labels = (key,) if isinstance(key, str) else key
        if len(labels) != arity:
            raise ValueError(f"{name}: source key {key!r} does not match {arity} label(s)")
        yield labels, value


class _Metric:
    kind: ClassVar[str]

    def __init__(self, name: str, help_text: str, label_names: Iterable[str] = ()) -> None:
        self.name = _check_name(name)
        self.help = help_text
        self.label_names = _check_label_names(label_names)

    def _bad_labels(self, labels: Labels) -> ValueError:
        return ValueError(f"{self.name}: labels {labels!r} do not match {self.label_names}")

    def sample_names(self) -> tuple[str, ...]:
        return (self.name,)

    def render_into(self, out: list[str]) -> None:
        raise NotImplementedError


class _Scalar(_Metric):
    """A counter or gauge: a dict of label tuple → value, plus optional scrape-time sources."""

    def __init__(self, name: str, help_text: str, label_names: Iterable[str] = ()) -> None:
        super().__init__(name, help_text, label_names)
        self._values: dict[Labels, float] = {}
        self._sources: list[Callable[[], LabelledValues]] = []

    def attach(self, source: Callable[[], LabelledValues]) -> None:
        """Also export `source()` at every scrape (keys: label tuples, or a str for one label).

        A callable rather than the mapping itself, so a source that gets replaced is still
        followed. Counters add source values to their own; gauges take the source's value.
        """
        self._sources.append(source)

    def _merge(self, into: dict[Labels, float], labels: Labels, value: float) -> None:
        into[labels] = value

    def collect(self) -> dict[Labels, float]:
        values = dict(self._values)
        for source in self._sources:
            for labels, value in _read_source(source(), self.name, len(self.label_names)):
                self._merge(values, labels, value)
        return values

    def render_into(self, out: list[str]) -> None:
        _header(out, self.name, self.kind, self.help)
        names = self.label_names
        for labels, value in self.collect().items():
            out.append(f"{self.name}{_label_str(names, labels)} {_fmt(value)}\n")


class Counter(_Scalar):
    kind = "counter"

    def inc(self, labels: Labels = (), n: float = 1) -> None:
        if n < 0:
            raise ValueError(f"{self.name}: counters only go up")
        values = self._values
        if labels in values:  # the hot path: one lookup, one store
            values[labels] += n
        elif len(labels) == len(self.label_names):
            values[labels] = n
        else:
            raise self._bad_labels(labels)

    def _merge(self, into: dict[Labels, float], labels: Labels, value: float) -> None:
        into[labels] = into.get(labels, 0.0) + value


class Gauge(_Scalar):
    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        if labels not in self._values and len(labels) != len(self.label_names):
            raise self._bad_labels(labels)
        self._values[labels] = value

    def inc(self, labels: Labels = (), n: float = 1) -> None:
        self.set(labels, self._values.get(labels, 0.0) + n)

    def remove(self, labels: Labels) -> None:
        """Forget one series, e.g. the lag of a partition that was revoked."""
        self._values.pop(labels, None)

    def clear(self) -> None:
        self._values.clear()


class _Timer:
    __slots__ = ("_hist", "_labels", "_start")

    def __init__(self, hist: Histogram, labels: Labels) -> None:
        self._hist, self._labels, self._start = hist, labels, 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._hist.observe(time.perf_counter() - self._start, self._labels)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        buckets: Iterable[float] = BATCH_BUCKETS,
        label_names: Iterable[str] = (),
    ) -> None:
        super().__init__(name, help_text, label_names)
        if "le" in self.label_names:
            raise ValueError(f"{name}: 'le' is reserved in histograms")
        bounds = tuple(float(b) for b in buckets if b != math.inf)
        if not bounds or any(math.isnan(b) for b in bounds):
            raise ValueError(f"{name}: need at least one finite bucket bound")
        if any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"{name}: bucket bounds must be strictly increasing")
        self.buckets = bounds
        # Per series: non-cumulative counts per bucket, then the +Inf overflow, then the sum.
        self._series: dict[Labels, list[float]] = {}

    def observe(self, value: float, labels: Labels = ()) -> None:
        state = self._series.get(labels)
        if state is None:
            if len(labels) != len(self.label_names):
                raise self._bad_labels(labels)
            state = self._series[labels] = [0.0] * (len(self.buckets) + 2)
        state[bisect_left(self.buckets, value)] += 1  # le is inclusive: bisect_left
        state[-1] += value

    def time(self, labels: Labels = ()) -> _Timer:
        """`with hist.time(): ...` observes the block's duration in seconds."""
        return _Timer(self, labels)

    def sample_names(self) -> tuple[str, ...]:
        return tuple(self.name + s for s in ("_bucket", "_sum", "_count"))

    def render_into(self, out: list[str]) -> None:
        _header(out, self.name, self.kind, self.help)
        names, n = self.label_names, self.name
        les = [f'le="{_fmt(b)}"' for b in self.buckets] + ['le="+Inf"']
        for labels, state in self._series.items():
            cumulative = 0.0
            for le, count in zip(les, state, strict=False):
                cumulative += count
                out.append(f"{n}_bucket{_label_str(names, labels, le)} {_fmt(cumulative)}\n")
            plain = _label_str(names, labels)
            out.append(f"{n}_sum{plain} {_fmt(state[-1])}\n{n}_count{plain} {_fmt(cumulative)}\n")


_M = TypeVar("_M", bound=_Metric)


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._taken: set[str] = set()
        self._collectors: list[Collector] = []

    def register(self, metric: _M) -> _M:
        names = {metric.name, *metric.sample_names()}
        if names & self._taken:
            raise ValueError(f"metric {metric.name!r} already registered")
        self._taken |= names
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, label_names: Iterable[str] = ()) -> Counter:
        return self.register(Counter(name, help_text, label_names))

    def gauge(self, name: str, help_text: str, label_names: Iterable[str] = ()) -> Gauge:
        return self.register(Gauge(name, help_text, label_names))

    def histogram(
        self,
        name: str,
        help_text: str,
        buckets: Iterable[float] = BATCH_BUCKETS,
        label_names: Iterable[str] = (),
    ) -> Histogram:
        return self.register(Histogram(name, help_text, buckets, label_names))

    def add_collector(self, fn: Collector) -> None:
        """`fn()` is called at every scrape; its samples are grouped into families by name."""
        self._collectors.append(fn)

    def render(self) -> bytes:
        """The whole registry in text format 0.0.4. Raises ValueError on inconsistent samples."""
        out: list[str] = []
        for metric in self._metrics.values():
            metric.render_into(out)
        families: dict[str, list[Sample]] = {}
        for collector in self._collectors:
            for sample in collector():
                families.setdefault(sample.name, []).append(sample)
        for name, samples in families.items():
            first = samples[0]
            # Two families of one name are invalid exposition: fail the scrape, loudly.
            if name in self._taken or any(s.type != first.type for s in samples):
                raise ValueError(f"collector sample {name!r} clashes with another family")
            _header(out, _check_name(name), first.type, first.help)
            for s in samples:
                names = _check_label_names(s.labels)
                out.append(f"{name}{_label_str(names, s.labels.values())} {_fmt(s.value)}\n")
        return "".join(out).encode("utf-8", "replace")  # lone surrogates must not fail a scrape


def _collector(
    kind: MetricType,
    name: str,
    help_text: str,
    label_names: Iterable[str],
    source: Callable[[], LabelledValues],
) -> Collector:
    _check_name(name)
    names = _check_label_names(label_names)

    def collect() -> Iterable[Sample]:
        for labels, value in _read_source(source(), name, len(names)):
            yield Sample(name, kind, help_text, dict(zip(names, labels, strict=True)), value)

    return collect


def counter_collector(
    name: str, help_text: str, label_names: Iterable[str], source: Callable[[], LabelledValues]
) -> Collector:
    """A collector exporting `source()` (e.g. a `collections.Counter`) as a counter family."""
    return _collector("counter", name, help_text, label_names, source)


def gauge_collector(
    name: str, help_text: str, label_names: Iterable[str], source: Callable[[], LabelledValues]
) -> Collector:
    """A collector exporting `source()` as a gauge family, e.g. `lambda: {(): len(window)}`."""
    return _collector("gauge", name, help_text, label_names, source)


@dataclass(frozen=True, slots=True)
class PipelineMetrics:
    """The processor's metrics. Update with inc/set/observe, or `attach` an existing counter:
    `metrics.records_in.attach(lambda: core.stats.records_in)`."""

    records_in: Counter
    receipts_in: Counter
    events_out: Counter
    duplicates: Counter
    stale: Counter
    dead_letters: Counter
    skipped: Counter
    unmapped_status: Counter
    window_messages: Gauge
    window_evicted_by_count: Counter
    window_expired: Counter
    batch_seconds: Histogram
    commit_seconds: Histogram
    consumer_lag: Gauge
    batches: Counter


def standard_metrics(registry: Registry) -> PipelineMetrics:
    c, p = registry.counter, ("provider",)
    return PipelineMetrics(
        records_in=c("pipeline_records_in_total", "Input records consumed.", p),
        receipts_in=c("pipeline_receipts_in_total", "Receipts decoded from input records.", p),
        events_out=c(
            "pipeline_events_out_total", "Canonical events produced.", ("provider", "status")
        ),
        duplicates=c("pipeline_duplicates_total", "Receipts dropped as duplicates.", p),
        stale=c("pipeline_stale_total", "Receipts dropped as stale (older status).", p),
        dead_letters=c(
            "pipeline_dead_letters_total",
            "Records sent to the dead letter topic.",
            ("error_class",),
        ),
        skipped=c("pipeline_skipped_total", "Records skipped as carrying no receipts.", ("kind",)),
        unmapped_status=c(
            "pipeline_unmapped_status_total", "Provider statuses with no canonical mapping.", p
        ),
        window_messages=registry.gauge(
            "pipeline_window_messages", "Messages held in the dedupe window."
        ),
        window_evicted_by_count=c(
            "pipeline_window_evicted_by_count_total", "Window entries evicted by the size cap.", p
        ),
        window_expired=c("pipeline_window_expired_total", "Window entries expired by age.", p),
        batch_seconds=registry.histogram(
            "pipeline_batch_seconds", "Time to process one batch.", BATCH_BUCKETS
        ),
        commit_seconds=registry.histogram(
            "pipeline_commit_seconds", "Time to commit offsets.", COMMIT_BUCKETS
        ),
        consumer_lag=registry.gauge(
            "pipeline_consumer_lag", "Messages behind the partition end.", ("topic", "partition")
        ),
        batches=c("pipeline_batches_total", "Batches processed."),
    )


# ------------------------------------------------------------------------------------ HTTP server

_MAX_HEAD: Final = 8192  # request line + headers; a scrape needs a few hundred bytes
_MAX_CONNECTIONS: Final = 32
_WRITE_TIMEOUT: Final = 10.0
_LINGER_SECONDS: Final = 2.0
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_TEXT: Final = "text/plain; charset=utf-8"
_EXPOSITION: Final = "text/plain; version=0.0.4; charset=utf-8"


def _always_healthy() -> tuple[bool, str]:
    return True, "ok"


class _HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _read_head(stream: SocketStream) -> bytes | None:
    """The request head, or None when the client closed first."""
    buf = bytearray()
    while True:
        try:
            buf += await stream.receive(4096)
        except anyio.EndOfStream:
            return None
        end = _HEAD_END.search(buf)
        if end:
            return bytes(buf[: end.start()])
        if len(buf) > _MAX_HEAD:
            raise _HttpError(431)


def _route(
    head: bytes, registry: Registry, health: Callable[[], tuple[bool, str]]
) -> tuple[int, str, bytes, bool]:
    """(status, content type, body, is HEAD) for one request head."""
    parts = head.split(b"\n", 1)[0].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _HttpError(400)
    method, path = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        raise _HttpError(405)
    is_head = method == b"HEAD"
    if path == b"/metrics":
        try:
            return 200, _EXPOSITION, registry.render(), is_head
        except Exception:
            _log.exception("rendering metrics failed")
            return 500, _TEXT, b"metrics rendering failed\n", is_head
    if path == b"/healthz":
        try:
            ok, reason = health()
        except Exception as exc:
            ok, reason = False, f"health check raised {type(exc).__name__}"
        if ok:
            return 200, _TEXT, b"ok\n", is_head
        return 503, _TEXT, f"{reason}\n".encode(), is_head
    return 404, _TEXT, b"not found\n", is_head


async def _respond(
    stream: SocketStream, status: int, ctype: str, body: bytes, omit_body: bool = False
) -> None:
    allow = "Allow: GET, HEAD\r\n" if status == 405 else ""
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n{allow}Connection: close\r\n\r\n"
    ).encode()
    # A client that stops reading must not hold the connection slot forever.
    with anyio.move_on_after(_WRITE_TIMEOUT):
        await stream.send(head if omit_body else head + body)


async def _linger(stream: SocketStream) -> None:
    """Half-close, then drain what the client still sends: closing with unread input resets the
    connection, which can destroy the error response before the client reads it."""
    with anyio.move_on_after(_LINGER_SECONDS):
        await stream.send_eof()
        drained = 0
        try:
            while drained < _MAX_HEAD * 8:
                drained += len(await stream.receive())
        except anyio.EndOfStream:
            pass


async def _exchange(
    stream: SocketStream,
    registry: Registry,
    health: Callable[[], tuple[bool, str]],
    read_timeout: float,
) -> None:
    try:
        with anyio.fail_after(read_timeout):
            head = await _read_head(stream)
        if head is None:
            return
        status, ctype, body, is_head = _route(head, registry, health)
        await _respond(stream, status, ctype, body, is_head)
        return
    except TimeoutError:
        status, body = 408, b"request timeout\n"
    except _HttpError as exc:
        status, body = exc.status, f"{_REASONS[exc.status]}\n".encode()
    await _respond(stream, status, _TEXT, body)
    await _linger(stream)


async def serve_metrics(
    registry: Registry,
    port: int,
    host: str = "127.0.0.1",
    health: Callable[[], tuple[bool, str]] = _always_healthy,
    *,
    read_timeout: float = 5.0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `GET /metrics` and `GET /healthz` until cancelled; one request per connection.

    `port=0` picks a free port; `task_status.started(port)` reports the one bound.
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    slots = anyio.Semaphore(_MAX_CONNECTIONS)

    async def handle(stream: SocketStream) -> None:
        try:
            async with stream:
                try:
                    slots.acquire_nowait()
                except anyio.WouldBlock:
                    return  # overloaded (a connection flood): shed it, the loop matters more
                try:
                    await _exchange(stream, registry, health, read_timeout)
                finally:
                    slots.release()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the client went away; nothing to tell anyone
        except Exception:
            # Never let one connection's bug take the listener (and its task group) down.
            _log.exception("metrics connection failed")

    async def accept_loop(sock: SocketListener, tg: TaskGroup) -> None:
        # Our own loop, not listener.serve(): an accept error such as EMFILE would end serve()
        # and, through the caller's task group, the whole processor.
        while True:
            try:
                stream = await sock.accept()
            except OSError as exc:
                _log.warning("metrics accept failed", extra={"error": str(exc)})
                await anyio.sleep(0.5)
                continue
            tg.start_soon(handle, stream)

    async with listener, anyio.create_task_group() as tg:
        for sock in listener.listeners:
            assert isinstance(sock, SocketListener)  # what create_tcp_listener always makes
            tg.start_soon(accept_loop, sock, tg)
        task_status.started(listener.extra(SocketAttribute.local_port))


# ---------------------------------------------------------------------------------------- logging

# Attributes every LogRecord has; anything else on a record came from `extra={...}`.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (RFC 3339, UTC), level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                doc[f"extra_{key}" if key in doc else key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(doc, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits: degrade to repr, stay one line
            safe = {k: v if isinstance(v, str) else repr(v) for k, v in doc.items()}
            return orjson.dumps(safe).decode()


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Marker type, so configure_logging can replace its own handler when called again."""


def configure_logging(level: str) -> None:
    """Make the `pipeline` logger emit JSON lines on stderr at `level` (e.g. "INFO").

    The loop logs events worth logging (start, partition assignment, commit failures, shutdown)
    with context in `extra={...}`, never one line per receipt or record: per-item facts are
    counters. Raises ValueError for an unknown level name.
    """
    logger = logging.getLogger("pipeline")
    logger.setLevel(level.upper())
    for old in [h for h in logger.handlers if isinstance(h, _JsonHandler)]:
        logger.removeHandler(old)
    handler = _JsonHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False  # the root logger would print every line a second time
