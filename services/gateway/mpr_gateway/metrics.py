"""Prometheus metrics: HTTP traffic, jobs created and job events applied (one registry per app)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "mpr_gateway_http_requests",
            "HTTP requests by route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "mpr_gateway_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ("method", "route"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.jobs_created = Counter(
            "mpr_gateway_jobs_created",
            "Jobs created, by kind and origin (api, command).",
            ("kind", "origin"),
            registry=self.registry,
        )
        self.events_applied = Counter(
            "mpr_gateway_job_events",
            "Job events received, by type and outcome (applied, ignored, unknown_job).",
            ("type", "outcome"),
            registry=self.registry,
        )

    def job_created(self, kind: str, origin: str) -> None:
        self.jobs_created.labels(kind, origin).inc()

    def event_applied(self, event_type: str, outcome: str) -> None:
        self.events_applied.labels(event_type, outcome).inc()


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template (bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or _mount(scope) or "<unmatched>"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def _mount(scope: Scope) -> str | None:
    root = scope.get("root_path") or ""
    return root or None
