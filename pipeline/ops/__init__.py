"""Operations, shared by the processor and the ingress: metrics, probes, HTTP and unix-socket
endpoints, JSON logging, and the garbage collector's tuning."""

from ._endpoint import MAX_CONNECTIONS, serve_http, serve_unix, serve_workers
from ._gc import GEN0_THRESHOLD, tune_collector
from ._logging import JsonFormatter, RateLimit, Retried, configure_logging
from ._metrics import (
    OTHER,
    KafkaMetrics,
    LifecycleView,
    PipelineCollector,
    StatsView,
    WindowView,
    bounded,
    consumer_lag,
    observe_kafka,
)
from ._probes import Health, Probes

__all__ = [
    "GEN0_THRESHOLD",
    "MAX_CONNECTIONS",
    "OTHER",
    "Health",
    "JsonFormatter",
    "KafkaMetrics",
    "LifecycleView",
    "PipelineCollector",
    "Probes",
    "RateLimit",
    "Retried",
    "StatsView",
    "WindowView",
    "bounded",
    "configure_logging",
    "consumer_lag",
    "observe_kafka",
    "serve_http",
    "serve_unix",
    "serve_workers",
    "tune_collector",
]
