"""Prometheus metrics: ``GET /metrics`` in the text format, from a registry per app.

Counters and histograms are recorded once per request, when it ends, by a pure ASGI
middleware; gauges (queue, loaded models, slots, requests in flight) are read from the
scheduler at scrape time. Labels stay bounded: ``route`` is the route's template (``other``
for paths no route matches) and ``model`` a stored model's name (``other`` for the rest).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nexus.inference.service import Usage, request_usage
from nexus.scheduler import LoadedModel, Scheduler

#: The text format ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
METRICS_PATH = "/metrics"
#: Routes that produce tokens: the ones with a time to first token.
GENERATION_ROUTES = frozenset(
    {
        "/api/chat",
        "/api/generate",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/responses",
        "/v1/messages",
    }
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


#: A request kind's series: requests, latency, time to first token, prompt and completion tokens.
_Series = tuple[Counter, Histogram, Histogram | None, Counter, Counter]


def model_label(model: LoadedModel) -> str:
    """The stored model a runner was loaded for (its latest name when several share it)."""
    stored = model.info.get("model")
    name = getattr(stored, "display_name", None)
    return name if isinstance(name, str) and name else OTHER


class Metrics:
    """The app's metric series and the registry that exposes them."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.scheduler = scheduler
        #: Requests being answered now, scrapes excluded.
        self.in_flight = 0
        r = self.registry
        self.requests = Counter(
            "nexus_requests",
            "HTTP requests answered, by route template, model and status",
            ["route", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "nexus_request_duration_seconds",
            "Time from request to the end of its answer (streams included)",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "nexus_time_to_first_token_seconds",
            "Time from request to the first generated token, streamed or not",
            ["route", "model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "nexus_prompt_tokens",
            "Prompt tokens evaluated (prompt_eval_count)",
            ["model"],
            registry=r,
        )
        self.completion_tokens = Counter(
            "nexus_completion_tokens", "Tokens generated (eval_count)", ["model"], registry=r
        )
        self.load_seconds = Histogram(
            "nexus_model_load_seconds",
            "Time to load a model into a runner",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.loads = Counter("nexus_model_loads", "Model loads", ["model"], registry=r)
        self._series: dict[tuple[str, str, int], _Series] = {}
        r.register(SchedulerCollector(self))
        scheduler.load_listeners.append(self.model_loaded)

    def model_loaded(self, model: LoadedModel) -> None:
        name = model_label(model)
        self.load_seconds.labels(name).observe(model.load_duration)
        self.loads.labels(name).inc()

    def record(self, route: str, status: int, usage: Usage, ended: float) -> None:
        """One finished request: one dict lookup, then a few increments and observations."""
        model = usage.model or OTHER
        key = (route, model, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._children(route, model, status)
        requests, latency, ttft, prompt, completion = series
        requests.inc()
        latency.observe(ended - usage.started)
        if usage.first_token and ttft is not None:
            ttft.observe(usage.first_token - usage.started)
        if usage.prompt_tokens:
            prompt.inc(usage.prompt_tokens)
        if usage.completion_tokens:
            completion.inc(usage.completion_tokens)

    def _children(self, route: str, model: str, status: int) -> _Series:
        """The labelled series one kind of request feeds (label values are bounded)."""
        generation = route in GENERATION_ROUTES
        return (
            self.requests.labels(route, model, str(status)),
            self.latency.labels(route, model),
            self.ttft.labels(route, model) if generation else None,
            self.prompt_tokens.labels(model),
            self.completion_tokens.labels(model),
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class SchedulerCollector(Collector):
    """Gauges read from the scheduler when scraped: nothing to keep up per request."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families([])

    def collect(self) -> Iterable[Metric]:
        return self._families(self.metrics.scheduler.loaded())

    def _families(self, loaded: Sequence[LoadedModel]) -> list[Metric]:
        scheduler = self.metrics.scheduler
        queue = GaugeMetricFamily(
            "nexus_queue_depth", "Requests waiting for a model load or a free slot"
        )
        queue.add_metric([], scheduler.waiting)
        count = GaugeMetricFamily("nexus_loaded_models", "Models loaded in runners")
        count.add_metric([], len({model_label(m) for m in loaded}))
        in_flight = GaugeMetricFamily(
            "nexus_requests_in_flight", "Requests being answered, scrapes excluded"
        )
        in_flight.add_metric([], self.metrics.in_flight)
        busy = GaugeMetricFamily(
            "nexus_slots_busy", "Slots in use per loaded model", labels=["model"]
        )
        total = GaugeMetricFamily("nexus_slots_total", "Slots per loaded model", labels=["model"])
        slots: dict[str, list[int]] = {}
        for model in loaded:
            pair = slots.setdefault(model_label(model), [0, 0])
            pair[0] += model.busy
            pair[1] += model.spec.num_parallel
        for name, (used, size) in sorted(slots.items()):
            busy.add_metric([name], used)
            total.add_metric([name], size)
        return [queue, count, in_flight, busy, total]


def _template(route: object) -> str | None:
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else None


class RouteTable:
    """Route templates by path pattern, for requests answered before routing (a 401)."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes
        self._table: list[tuple[re.Pattern[str], str, frozenset[str]]] | None = None

    def _build(self) -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
        try:  # FastAPI 0.165+ nests included routers; this lists the routes inside
            from fastapi.routing import iter_route_contexts

            flat: list[Any] = list(iter_route_contexts(self.routes))
        except ImportError:
            flat = list(self.routes)
        table = []
        for route in flat:
            pattern, template = getattr(route, "path_regex", None), _template(route)
            if isinstance(pattern, re.Pattern) and template:
                table.append((pattern, template, frozenset(getattr(route, "methods", None) or ())))
        return table

    def template(self, scope: Scope) -> str:
        """The template of the route that answered (or would answer) ``scope``, else ``other``."""
        answered = _template(scope.get("route"))
        if answered:
            return answered
        if self._table is None:
            self._table = self._build()
        path, method, found = scope["path"], scope["method"], OTHER
        for pattern, template, methods in self._table:
            if pattern.match(path):
                if method in methods:
                    return template
                if found == OTHER:
                    found = template
        return found


class MetricsMiddleware:
    """Times each request and records it once it has been answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = RouteTable(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        usage = Usage(time.perf_counter())
        token = request_usage.set(usage)
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        scrape = scope["path"] == METRICS_PATH
        if not scrape:
            self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            status = status or 500
            raise
        finally:
            if not scrape:
                self.metrics.in_flight -= 1
            request_usage.reset(token)
            ended = time.perf_counter()
            # no answer at all: the client went away first (499, as nginx logs it)
            self.metrics.record(self.routes.template(scope), status or 499, usage, ended)


router = APIRouter()


@router.get(
    METRICS_PATH,
    response_class=Response,
    operation_id="metrics",
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Every ``nexus_*`` series; loads nothing."""
    state: Metrics = request.app.state.metrics
    return Response(state.exposition(), media_type=CONTENT_TYPE)


def install_metrics(app: FastAPI, scheduler: Scheduler) -> Metrics:
    """Add ``/metrics`` and the recording middleware (outermost of those added so far)."""
    collected = Metrics(scheduler)
    app.state.metrics = collected
    app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=collected, routes=app.router.routes)
    return collected


__all__ = ["Metrics", "MetricsMiddleware", "install_metrics", "router"]
