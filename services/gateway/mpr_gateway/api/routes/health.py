"""Liveness, readiness and metrics (mpr_shared.health's contract): open endpoints, no API key.

Documented routes rather than ``Health.routes()``, so they appear in the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from mpr_gateway.deps import HealthDep
from mpr_shared.health import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=Liveness)
async def health(checks: HealthDep) -> Liveness:
    """Liveness: the process answers (no I/O)."""
    return checks.liveness()


@router.get(
    "/api/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable."}},
)
async def ready(checks: HealthDep) -> JSONResponse:
    """Readiness: the database is critical (503 without it); RabbitMQ and S3 are not (200,
    "degraded"): jobs wait in the outbox until RabbitMQ is back."""
    readiness = await checks.readiness()
    return JSONResponse(readiness.model_dump(), status_code=readiness.http_status)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(checks: HealthDep) -> Response:
    """Prometheus metrics."""
    return Response(checks.metrics(), media_type=CONTENT_TYPE_LATEST)
