"""The one health and readiness contract: JSON shapes, the 200/503 rule, timeouts."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from mpr_shared.health import Dependency, Health


async def ok() -> None:
    return None


async def down() -> None:
    raise ConnectionError("connection refused")


async def hangs() -> None:
    await asyncio.sleep(60)


def service(*dependencies: Dependency) -> Health:
    registry = CollectorRegistry()
    Counter("mpr_test_things", "Things.", registry=registry).inc(3)
    return Health("catalog", dependencies, registry)


async def get(health: Health, path: str, app=None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app or health.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_liveness_does_no_io_and_names_the_service():
    response = await get(service(Dependency("database", hangs, critical=True)), "/api/health")
    assert response.status_code == 200
    assert response.json() == {"service": "catalog", "status": "ok"}


@pytest.mark.parametrize(
    ("rabbitmq", "database", "status", "code"),
    [
        (ok, ok, "ready", 200),
        (down, ok, "degraded", 200),  # a non-critical dependency: still serving
        (ok, down, "unavailable", 503),  # a critical one: out of rotation
        (down, down, "unavailable", 503),
    ],
)
async def test_only_a_failed_critical_check_makes_it_unavailable(rabbitmq, database, status, code):
    health = service(
        Dependency("rabbitmq", rabbitmq, critical=False),
        Dependency("database", database, critical=True),
    )
    response = await get(health, "/api/ready")
    assert response.status_code == code
    body = response.json()
    assert body["service"] == "catalog" and body["status"] == status
    assert set(body["checks"]) == {"rabbitmq", "database"}
    assert body["checks"]["database"]["critical"] is True
    assert body["checks"]["rabbitmq"] == {
        "ok": rabbitmq is ok,
        "critical": False,
        "detail": "ok" if rabbitmq is ok else "ConnectionError: connection refused",
    }


async def test_a_check_that_hangs_fails_within_its_timeout():
    health = service(
        Dependency("s3", hangs, critical=True, timeout=0.05),
        Dependency("ffmpeg", hangs, critical=True, timeout=0.05),
    )
    started = asyncio.get_running_loop().time()
    readiness = await health.readiness()
    assert asyncio.get_running_loop().time() - started < 1.0  # checked at once, not in turn
    assert readiness.status == "unavailable" and readiness.http_status == 503
    assert readiness.checks["s3"].detail == "no answer within 0.05s"


async def test_metrics_are_prometheus_text():
    response = await get(service(), "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "mpr_test_things_total 3.0" in response.text


async def test_the_routes_mount_in_a_fastapi_app():
    health = service(Dependency("database", down, critical=True))
    app = FastAPI()
    app.router.routes.extend(health.routes())
    assert (await get(health, "/api/health", app)).json()["status"] == "ok"
    response = await get(health, "/api/ready", app)
    assert response.status_code == 503 and response.json()["status"] == "unavailable"
