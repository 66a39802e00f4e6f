"""Prometheus metrics: HTTP traffic, jobs created and finished, job events applied and the
outbox lag (one registry per gateway; deploy's dashboard and alerts read these names)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mpr_gateway.domain.failures import FailureReason
from mpr_gateway.domain.jobs import JobRecord

# Queued to final: thumbnails take seconds, long HLS ladders an hour or more.
JOB_DURATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)


class GatewayMetrics:
    """The gateway's metrics (the application's Telemetry port) in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._declare_http()
        self._declare_jobs()

    def _declare_http(self) -> None:
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

    def _declare_jobs(self) -> None:
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
        self.jobs_finished = Counter(
            "mpr_gateway_jobs_finished",
            "Jobs reaching a final state (completed, failed, cancelled), whatever the executor.",
            ("kind", "preset", "state"),
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "mpr_gateway_job_duration_seconds",
            "Time from a job's creation (queued) to its final state.",
            ("kind", "preset", "state"),
            buckets=JOB_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.job_failures = Counter(
            "mpr_gateway_job_failures",
            "Failed jobs by a bounded reason code: " + ", ".join(FailureReason) + ".",
            ("kind", "reason"),
            registry=self.registry,
        )
        self.outbox_lag = Gauge(
            "mpr_gateway_outbox_lag_seconds",
            "Age of the oldest outbox row the relay found unpublished; 0 when none.",
            registry=self.registry,
        )

    def watch_outbox(self, lag_seconds: Callable[[], float]) -> None:
        """Read the outbox lag from the relay at every scrape."""
        self.outbox_lag.set_function(lag_seconds)

    def job_created(self, job: JobRecord, origin: str) -> None:
        self.jobs_created.labels(job.kind.value, origin).inc()

    def event_applied(self, event_type: str, outcome: str) -> None:
        self.events_applied.labels(event_type, outcome).inc()

    def job_finished(self, job: JobRecord, failure: FailureReason | None) -> None:
        kind, preset = job.kind.value, job.preset or ""
        self.jobs_finished.labels(kind, preset, job.status).inc()
        if job.finished_at is not None:
            seconds = max(0.0, (job.finished_at - job.created_at).total_seconds())
            self.job_duration.labels(kind, preset, job.status).observe(seconds)
        if failure is not None:
            self.job_failures.labels(kind, failure.value).inc()


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
