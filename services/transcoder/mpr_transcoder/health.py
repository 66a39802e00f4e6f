"""The replica's small HTTP app (only when HEALTH_PORT is set): liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_SECONDS = 3.0


class Metrics:
    """Prometheus metrics of one replica, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "mpr_transcoder_jobs",
            "Job deliveries handled, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "mpr_transcoder_job_seconds",
            "Wall time of a job delivery, by outcome.",
            ["outcome"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400),
            registry=self.registry,
        )
        self.running = Gauge(
            "mpr_transcoder_running_jobs", "Jobs running on this replica.", registry=self.registry
        )


def ffmpeg_check(binary: str, probe_binary: str) -> Check:
    async def check() -> None:
        missing = [b for b in (binary, probe_binary) if shutil.which(b) is None]
        if missing:
            raise RuntimeError(f"not found: {', '.join(missing)}")

    return check


def build_health_app(metrics: Metrics, checks: dict[str, Check]) -> Starlette:
    """GET /api/health (no I/O), /api/ready (each dependency; 503 if one is down), /metrics."""

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> JSONResponse:
        async def run(check: Check) -> str:
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            except Exception as exc:
                return f"down: {type(exc).__name__}: {exc}"[:300]
            return "ok"

        names = list(checks)
        results = await asyncio.gather(*(run(checks[n]) for n in names))
        status = dict(zip(names, results, strict=True))
        ok = all(r == "ok" for r in results)
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "checks": status},
            status_code=200 if ok else 503,
        )

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/ready", ready),
            Route("/metrics", metrics_endpoint),
        ]
    )
