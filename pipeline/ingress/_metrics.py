"""The ingress's Prometheus metrics (prometheus_client, its own registry). Every label value
comes from a closed set: the route table, "unknown" for paths outside it, and OUTCOMES."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ._routes import ROUTES

OUTCOMES: Final = (
    "accepted",
    "not_found",
    "method_not_allowed",
    "forbidden",
    "unauthorized",
    "bad_request",
    "too_large",
    "timeout",
    "overloaded",
    "broker_unavailable",
)


class IngressMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ingress_requests",
            "HTTP requests by provider, endpoint and outcome",
            ["provider", "endpoint", "outcome"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "ingress_body_bytes",
            "body bytes written to the raw topic (acknowledged)",
            ["provider", "endpoint"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "ingress_ack_latency_seconds",
            "from the body's arrival to the broker's acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ingress_in_flight_requests", "requests being handled", registry=self.registry
        )
        self.in_flight_bytes = Gauge(
            "ingress_in_flight_bytes", "body bytes held by requests", registry=self.registry
        )
        self.batch_records = Histogram(
            "ingress_batch_records",
            "bodies per producer batch (how much requests share)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        # Children resolved once: no label lookup per request.
        self.outcome = {
            (route.provider, route.endpoint, outcome): self.requests.labels(
                route.provider, route.endpoint, outcome
            )
            for route in ROUTES.values()
            for outcome in OUTCOMES
        }
        self.unknown = {o: self.requests.labels("unknown", "unknown", o) for o in OUTCOMES}
        self.route_bytes = {
            (r.provider, r.endpoint): self.bytes.labels(r.provider, r.endpoint)
            for r in ROUTES.values()
        }
