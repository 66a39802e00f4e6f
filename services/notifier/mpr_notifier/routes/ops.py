"""Liveness, readiness and metrics (no API key needed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from mpr_notifier.deps import RuntimeDep
from mpr_notifier.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/api/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers (no I/O)."""
    return {"status": "ok"}


@router.get("/api/ready")
async def ready(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Readiness: the broker is connected and the database answers; 503 otherwise."""
    checks = {
        "broker": await _check(_broker_ok(request)),
        "database": await _check(_database_ok(runtime)),
    }
    ok = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ok else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _broker_ok(request: Request) -> None:
    if not await request.app.state.broker.ping(timeout=CHECK_TIMEOUT_SECONDS):
        raise ConnectionError("not connected")


async def _database_ok(runtime: Runtime) -> None:
    ping = getattr(runtime.targets, "ping", None)
    if ping is None:
        raise ConnectionError("not started")
    await ping()


async def _check(probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("readiness check failed: %s", exc)
        return f"down: {type(exc).__name__}: {exc}"
    return "ok"
