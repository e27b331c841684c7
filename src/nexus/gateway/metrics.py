"""The gateway's Prometheus series, in a registry of its own (one per app)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nexus.gateway.backends import Backend

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
)  # fmt: skip
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


class _BackendCollector(Collector):
    """Backend state read at scrape time: nothing is counted on the request path for it."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "nexus_gateway_backend_up", "1 if the backend is up", labels=["backend"]
        )
        busy = GaugeMetricFamily(
            "nexus_gateway_in_flight_requests", "Requests in flight per backend", labels=["backend"]
        )
        models = GaugeMetricFamily(
            "nexus_gateway_backend_models", "Models a backend lists", labels=["backend"]
        )
        for backend in self.backends:
            up.add_metric([backend.name], 1.0 if backend.up else 0.0)
            busy.add_metric([backend.name], backend.in_flight)
            models.add_metric([backend.name], len(backend.models))
        yield up
        yield busy
        yield models


class GatewayMetrics:
    def __init__(self, backends: list[Backend]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_BackendCollector(backends))
        self.requests = Counter(
            "nexus_gateway_requests",
            "Requests by route, model and status",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nexus_gateway_request_duration_seconds",
            "Request latency, to the end of the reply",
            ["route", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "nexus_gateway_time_to_first_token_seconds",
            "Time to the first streamed chunk from the backend",
            ["route", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.overhead = Histogram(
            "nexus_gateway_overhead_seconds",
            "The gateway's own time per request (x-nexus-overhead-ms)",
            buckets=_OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "nexus_gateway_tokens",
            "Tokens counted by the backends",
            ["model", "kind"],
            registry=self.registry,
        )
        self.retries = Counter(
            "nexus_gateway_retries",
            "Requests retried on another backend",
            ["backend"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
