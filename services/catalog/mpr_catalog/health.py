"""The catalog's small HTTP app: liveness, readiness and metrics (only when HEALTH_PORT is set)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Check = Callable[[], Awaitable[object]]


def health_app(
    checks: Mapping[str, Check], registry: CollectorRegistry, *, timeout: float = 3.0
) -> Starlette:
    """GET /api/health (no I/O), /api/ready (each dependency; 503 if one is down), /metrics."""

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "catalog"})

    async def ready(_: Request) -> JSONResponse:
        async def run(check: Check) -> str:
            try:
                async with asyncio.timeout(timeout):
                    await check()
            except Exception as exc:
                return f"down: {type(exc).__name__}: {exc}"[:300]
            return "ok"

        results = await asyncio.gather(*(run(c) for c in checks.values()))
        status = dict(zip(checks, results, strict=True))
        ok = all(v == "ok" for v in status.values())
        body = {"status": "ok" if ok else "unavailable", "checks": status}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/ready", ready),
            Route("/metrics", metrics),
        ]
    )
