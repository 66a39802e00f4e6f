"""The health app: liveness without I/O, readiness per dependency, Prometheus metrics."""

from __future__ import annotations

import httpx

from mpr_catalog.health import health_app
from mpr_catalog.metrics import Metrics


async def ok() -> None:
    return None


async def down() -> None:
    raise ConnectionError("connection refused")


def client(**checks) -> httpx.AsyncClient:
    metrics = Metrics()
    metrics.probes.labels("ok").inc()
    app = health_app(checks, metrics.registry)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://catalog")


async def test_ready_lists_each_dependency_and_fails_when_one_is_down() -> None:
    async with client(database=ok, broker=ok, s3=down) as http:
        assert (await http.get("/api/health")).json() == {"status": "ok", "service": "catalog"}
        ready = await http.get("/api/ready")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"] == checks["broker"] == "ok"
        assert checks["s3"].startswith("down: ConnectionError")
        metrics = await http.get("/metrics")
        assert 'mpr_catalog_probes_total{status="ok"} 1.0' in metrics.text
    async with client(database=ok) as http:
        assert (await http.get("/api/ready")).status_code == 200
