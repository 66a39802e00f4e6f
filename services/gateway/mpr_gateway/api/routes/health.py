"""Liveness, readiness and metrics: open endpoints (no API key)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mpr_gateway.api.deps import GatewayDep
from mpr_gateway.api.schemas import DependencyOut, Health, Readiness
from mpr_gateway.application.system import readiness

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers (no I/O)."""
    return Health()


@router.get(
    "/api/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
)
async def ready(gateway: GatewayDep) -> JSONResponse:
    """Readiness: RabbitMQ, the database and S3 each answer (503 when one does not)."""
    statuses = await readiness(gateway.probes)
    ok = all(s.ok for s in statuses)
    body = Readiness(
        status="ready" if ok else "unavailable",
        dependencies={s.name: DependencyOut(ok=s.ok, detail=s.detail) for s in statuses},
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(gateway: GatewayDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)
