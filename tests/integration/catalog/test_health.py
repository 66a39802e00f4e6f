"""The shared health contract on HEALTH_PORT: liveness, readiness (RabbitMQ, database and S3,
all critical) and the metrics, outbox lag included."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from mpr_catalog.bootstrap import bootstrap, running
from mpr_catalog.settings import CatalogSettings
from mpr_shared.db.models import CatalogOutbox
from tests.integration.catalog.conftest import request_scan, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_readiness_and_metrics(
    catalog_env: dict, amqp_url: str, s3_client, buckets
) -> None:
    bucket = buckets[0]
    port = free_port()
    settings = CatalogSettings(**catalog_env, HEALTH_PORT=str(port))
    async with (
        running(bootstrap(settings)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        assert (await http.get("/api/health")).json() == {"service": "catalog", "status": "ok"}
        ready = await http.get("/api/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert (body["service"], body["status"]) == ("catalog", "ready")
        assert body["checks"] == {
            name: {"ok": True, "critical": True, "detail": "ok"}
            for name in ("rabbitmq", "database", "s3")
        }

        s3_client.put_object(Bucket=bucket, Key="a.mp4", Body=b"v")
        assert (await request_scan(amqp_url)).registered == 1
        metrics = (await http.get("/metrics")).text
        assert "mpr_catalog_outbox_lag_seconds " in metrics
        assert 'mpr_catalog_scanned_objects_total{outcome="registered"} 1.0' in metrics

        for name in buckets:
            s3_client.delete_object(Bucket=name, Key="a.mp4")
            s3_client.delete_bucket(Bucket=name)
        try:
            down = await http.get("/api/ready")
        finally:
            for name in buckets:
                s3_client.create_bucket(Bucket=name)
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["s3"]["ok"] is False and body["checks"]["s3"]["critical"] is True
    assert body["checks"]["database"]["ok"] is True


async def test_outbox_lag_is_the_age_of_the_oldest_unpublished_row(
    settings: CatalogSettings, sessions
) -> None:
    stuck_since = datetime.now(UTC) - timedelta(minutes=5)
    async with sessions() as session:  # a row the relay cannot publish (no such exchange)
        session.add(
            CatalogOutbox(
                id=uuid.uuid4(),
                exchange="mpr.nowhere",
                routing_key="asset.registered",
                message_type="AssetRegistered",
                body="{}",
                created_at=stuck_since,
                attempts=0,
            )
        )
        await session.commit()
    async with running(bootstrap(settings)) as catalog:
        registry = catalog.metrics.registry

        async def lagging() -> float | None:
            lag = registry.get_sample_value("mpr_catalog_outbox_lag_seconds") or 0.0
            return lag if lag >= 300 else None

        assert await wait_for(lagging) < 300 + 60
