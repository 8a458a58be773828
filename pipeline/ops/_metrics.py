"""Prometheus metrics of the processor, with `prometheus_client`.

The counters the core and the window already keep are read at scrape time by a custom collector
(nothing is counted twice on the hot path); the few facts nobody else keeps (batch and commit
durations, batches, restores) are the library's own metrics, updated once per batch or restore.
Every label value comes from a closed set — providers, statuses, error classes, skip kinds —
and anything else is exported as `other`, so no input can grow the number of series.

Scrapes run on the HTTP server's thread while the event loop updates the counters: every
source is copied (one C-level dict or list copy, atomic under the GIL) before it is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from schemas import PROVIDERS, STATUS_INDEX

from ..core import LATENCY_BUCKETS
from ..core.providers import SKIP_KINDS
from ..errors import DEAD_LETTER_CLASSES
from ._probes import Probes

__all__ = [
    "BATCH_BUCKETS",
    "COMMIT_BUCKETS",
    "OTHER",
    "RESTORE_BUCKETS",
    "CommitObserver",
    "KafkaMetrics",
    "LifecycleView",
    "Observed",
    "PipelineCollector",
    "bounded",
    "consumer_lag",
    "observe_kafka",
]

_log = logging.getLogger("pipeline.metrics")

BATCH_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
COMMIT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RESTORE_BUCKETS: Final = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

#: The label value of anything outside its closed set.
OTHER: Final = "other"
#: `records_in` counts records whose provider was not resolved as "unknown".
PROVIDER_LABELS: Final = frozenset({*PROVIDERS, "unknown"})
STATUS_LABELS: Final = frozenset(STATUS_INDEX)
SKIP_KIND_LABELS: Final = frozenset(SKIP_KINDS)


def bounded(
    source: Mapping[Any, float], allowed: Sequence[frozenset[str]]
) -> dict[tuple[str, ...], float]:
    """`source` (keys: a str for one label, tuples for more) with every label value outside
    its set replaced by `other`, values of keys that collapse summed."""
    out: dict[tuple[str, ...], float] = {}
    for key, value in dict(source).items():
        parts = (key,) if isinstance(key, str) else tuple(key)
        labels = tuple(
            p if isinstance(p, str) and p in ok else OTHER
            for p, ok in zip(parts, allowed, strict=True)
        )
        out[labels] = out.get(labels, 0.0) + value
    return out


# ------------------------------------------------------------------ what a process exposes


class StatsView(Protocol):
    """The core's counters (`pipeline.core.CoreStats`)."""

    @property
    def records_in(self) -> Mapping[str, int]: ...
    @property
    def receipts_in(self) -> Mapping[str, int]: ...
    @property
    def events_out(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def events_refused(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def dead_letters(self) -> Mapping[str, int]: ...
    @property
    def skipped(self) -> Mapping[str, int]: ...
    @property
    def unmapped_statuses(self) -> Mapping[str, int]: ...
    @property
    def unparsed_times(self) -> Mapping[str, int]: ...


class WindowCountersView(Protocol):
    """A window's counters (`pipeline.core.WindowCounters`): lists by provider index."""

    @property
    def duplicates(self) -> Sequence[int]: ...
    @property
    def stale(self) -> Sequence[int]: ...
    @property
    def evicted_by_count(self) -> Sequence[int]: ...
    @property
    def expired(self) -> Sequence[int]: ...
    @property
    def clock_skew(self) -> int: ...


class WindowView(Protocol):
    @property
    def counters(self) -> WindowCountersView: ...
    def __len__(self) -> int: ...


class LifecycleView(Protocol):
    """What the message lifecycles counted (`pipeline.core.LifecycleCounters`)."""

    @property
    def finals(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def conflicts(self) -> Mapping[str, int]: ...
    @property
    def timed_out(self) -> Mapping[str, int]: ...
    @property
    def forgotten(self) -> Mapping[str, int]: ...
    @property
    def latency(self) -> Mapping[str, Sequence[int]]: ...
    @property
    def latency_sum(self) -> Mapping[str, float]: ...


class Observed(Protocol):
    """What a running process shows the metrics; every method is called at scrape time, on
    the HTTP thread. Several cores or windows (one per owned partition) are summed."""

    def stats(self) -> Iterable[StatsView]: ...
    def windows(self) -> Iterable[WindowView]: ...
    def lifecycles(self) -> Iterable[LifecycleView]: ...
    def lag(self) -> Iterable[tuple[str, int, int]]:
        """(topic, partition, messages behind the partition's end) of each owned partition."""
        ...


class ConsumerView(Protocol):
    """The two calls of an aiokafka consumer that consumer lag needs."""

    def assignment(self) -> Iterable[Any]: ...
    def highwater(self, tp: Any, /) -> int | None: ...


def consumer_lag(
    consumer: ConsumerView, positions: Mapping[Any, int]
) -> Iterator[tuple[str, int, int]]:
    """Lag of each partition `consumer` owns: its high watermark less the committed position
    (`positions`, TopicPartition → next offset)."""
    done = dict(positions)
    for tp in list(consumer.assignment()):
        try:
            high = consumer.highwater(tp)
        except (AssertionError, AttributeError):
            # Revoked between the two calls (aiokafka asserts it is assigned): no lag to tell.
            continue
        position = done.get(tp)
        if high is not None and position is not None:
            yield tp.topic, tp.partition, max(0, high - position)


# --------------------------------------------------------------------------------- collector

_P: Final = (PROVIDER_LABELS,)
#: The core's counters: name, help, labels, closed sets (None: the error classes), attribute.
_Spec = tuple[str, str, tuple[str, ...], tuple[frozenset[str], ...] | None, str]
_CORE: Final[tuple[_Spec, ...]] = (
    ("pipeline_records_in_total", "Input records consumed.", ("provider",), _P, "records_in"),
    (
        "pipeline_receipts_in_total",
        "Receipts decoded from input records.",
        ("provider",),
        _P,
        "receipts_in",
    ),
    (
        "pipeline_events_out_total",
        "Canonical events produced.",
        ("provider", "status"),
        (PROVIDER_LABELS, STATUS_LABELS),
        "events_out",
    ),
    (
        "pipeline_events_refused_total",
        "Events counted out that the output topic refused (too large, timestamp out of its "
        "window), dead-lettered instead.",
        ("provider", "status"),
        (PROVIDER_LABELS, STATUS_LABELS),
        "events_refused",
    ),
    (
        "pipeline_dead_letters_total",
        "Records sent to the dead letter topic.",
        ("error_class",),
        None,
        "dead_letters",
    ),
    (
        "pipeline_skipped_total",
        "Records skipped as carrying no receipts.",
        ("kind",),
        (SKIP_KIND_LABELS,),
        "skipped",
    ),
    (
        "pipeline_unmapped_status_total",
        "Provider statuses with no canonical mapping.",
        ("provider",),
        _P,
        "unmapped_statuses",
    ),
    (
        "pipeline_unparsed_times_total",
        "Provider time values that could not be read (the event keeps the raw text).",
        ("provider",),
        _P,
        "unparsed_times",
    ),
)
#: The window's per-provider counters: name, help, attribute.
_WINDOW: Final = (
    ("pipeline_duplicates_total", "Receipts dropped as duplicates.", "duplicates"),
    ("pipeline_stale_total", "Receipts dropped as stale (older status).", "stale"),
    (
        "pipeline_window_evicted_by_count_total",
        "Window entries evicted by the size cap.",
        "evicted_by_count",
    ),
    ("pipeline_window_expired_total", "Window entries expired by age.", "expired"),
)


class PipelineCollector:
    """Families read from the core's and the window's counters, health, and consumer lag."""

    def __init__(self, observed: Observed, health: Probes | None = None) -> None:
        self.observed = observed
        self.health = health

    def describe(self) -> Iterable[Metric]:
        # Names only (the registry refuses a second collector of the same names).
        return list(self._families(sample=False))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(sample=True))

    def _families(self, sample: bool) -> Iterator[Metric]:
        stats = list(self.observed.stats()) if sample else []
        windows = list(self.observed.windows()) if sample else []
        counters = [w.counters for w in windows]
        for name, help_text, labels, allowed, attr in _CORE:
            family = CounterMetricFamily(name, help_text, labels=labels)
            total: dict[Any, float] = {}
            for s in stats:
                for key, value in dict(getattr(s, attr)).items():
                    total[key] = total.get(key, 0.0) + value
            sets = (DEAD_LETTER_CLASSES,) if allowed is None else allowed
            for values, value in bounded(total, sets).items():
                family.add_metric(values, value)
            yield family
        for name, help_text, attr in _WINDOW:
            family = CounterMetricFamily(name, help_text, labels=("provider",))
            if counters:
                columns = zip(*(list(getattr(c, attr)) for c in counters), strict=True)
                for provider, column in zip(PROVIDERS, columns, strict=True):
                    family.add_metric((provider,), sum(column))
            yield family
        yield from _lifecycle_families(list(self.observed.lifecycles()) if sample else [])
        skew = CounterMetricFamily(
            "pipeline_clock_skew_total",
            "Records stamped too far ahead of the wall clock to move the window's clock.",
        )
        window = GaugeMetricFamily(
            "pipeline_window_messages", "Messages held in the dedupe window."
        )
        # Topics and partitions are the configuration's and the broker's, not the input's.
        lag = GaugeMetricFamily(
            "pipeline_consumer_lag",
            "Messages behind the partition end.",
            labels=("topic", "partition"),
        )
        if sample:
            skew.add_metric((), sum(c.clock_skew for c in counters))
            window.add_metric((), sum(len(w) for w in windows))
            for topic, partition, behind in self.observed.lag():
                lag.add_metric((topic, str(partition)), behind)
        yield from (skew, window, lag)
        if self.health is not None:
            for name, probe in (("live", self.health.live), ("ready", self.health.ready)):
                gauge = GaugeMetricFamily(f"pipeline_{name}", f"1 when /{name}z answers 200.")
                if sample:
                    gauge.add_metric((), 1.0 if probe()[0] else 0.0)
                yield gauge


#: The lifecycles' per-provider counters: name, help, attribute.
_LIFECYCLE: Final = (
    ("pipeline_conflicts_total", "Messages with a second, different final status.", "conflicts"),
    ("pipeline_timeouts_total", "Messages timed out with no final status.", "timed_out"),
    (
        "pipeline_evicted_before_final_total",
        "Messages the window evicted (its count bound) while they waited for a final status: "
        "the window is too small for the final-timeout.",
        "forgotten",
    ),
)


def _summed(counts: Iterable[Mapping[Any, int]]) -> dict[Any, float]:
    total: dict[Any, float] = {}
    for source in counts:
        for key, n in dict(source).items():
            total[key] = total.get(key, 0.0) + n
    return total


def _lifecycle_families(views: Sequence[LifecycleView]) -> Iterator[Metric]:
    finals = CounterMetricFamily(
        "pipeline_finals_total",
        "Messages that reached their first final status.",
        labels=("provider", "status"),
    )
    summed = _summed(v.finals for v in views)
    for labels, value in bounded(summed, (PROVIDER_LABELS, STATUS_LABELS)).items():
        finals.add_metric(labels, value)
    yield finals
    for name, help_text, attr in _LIFECYCLE:
        family = CounterMetricFamily(name, help_text, labels=("provider",))
        for labels, value in bounded(_summed(getattr(v, attr) for v in views), _P).items():
            family.add_metric(labels, value)
        yield family
    latency = HistogramMetricFamily(
        "pipeline_delivery_latency_seconds",
        "Delivery latency of messages at their first final status (final - sent, else - "
        "submitted), by provider.",
        labels=("provider",),
    )
    if views:
        for provider in PROVIDERS:
            counts = [sum(c) for c in zip(*(list(v.latency[provider]) for v in views), strict=True)]
            cumulative, buckets = 0, []
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else str(float(bound)), cumulative))
            latency.add_metric((provider,), buckets, sum(v.latency_sum[provider] for v in views))
    yield latency


# ----------------------------------------------------------------------- the Kafka processor

CommitObserver = Callable[[Sequence[float], float], None]


@dataclass(frozen=True, slots=True)
class KafkaMetrics:
    """A process's registry and the attach points of what nobody else counts: a stage calls
    `on_commit(batch_seconds, commit_s)` after each commit (one commit may take the offsets of
    several batches), a restore calls
    `on_restore(seconds, records)` when a window (or a partition's window) is restored."""

    registry: CollectorRegistry
    on_commit: CommitObserver
    on_restore: Callable[[float, int], None]


def observe_kafka(observed: Observed, health: Probes | None = None) -> KafkaMetrics:
    """A registry of every pipeline metric for `observed`, and its batch and restore hooks."""
    # `_created` series would double the exposition for nothing.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineCollector(observed, health))
    batch_seconds = Histogram(
        "pipeline_batch_seconds",
        "Time from processing a batch to its offsets committed.",
        buckets=BATCH_BUCKETS,
        registry=registry,
    )
    commit_seconds = Histogram(
        "pipeline_commit_seconds",
        "Time to commit offsets (one commit may carry several batches).",
        buckets=COMMIT_BUCKETS,
        registry=registry,
    )
    batches = Counter("pipeline_batches", "Batches processed and committed.", registry=registry)
    restore_seconds = Histogram(
        "pipeline_restore_seconds",
        "Time to restore a dedupe window.",
        buckets=RESTORE_BUCKETS,
        registry=registry,
    )
    restored = Counter(
        "pipeline_restore_records",
        "Output records (and state records, for the time-outs that fired) read to restore windows.",
        registry=registry,
    )

    def on_commit(batch_times: Sequence[float], commit_s: float) -> None:
        for batch_s in batch_times:
            batch_seconds.observe(batch_s)
        commit_seconds.observe(commit_s)
        batches.inc(len(batch_times))

    def on_restore(seconds: float, records: int) -> None:
        restore_seconds.observe(seconds)
        restored.inc(records)

    return KafkaMetrics(registry, on_commit, on_restore)
