"""HTTP adapter without I/O: auth, error shape, CORS, the SSE stream generator, health."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from mpr_notifier.api.app import create_app
from mpr_notifier.api.routes.events import stream
from mpr_notifier.application.filters import EventFilter
from mpr_notifier.application.hub import EventHub
from mpr_notifier.bootstrap import bootstrap
from mpr_notifier.metrics import Metrics
from mpr_notifier.settings import NotifierSettings
from tests.unit.notifier.fakes import FakeJobs, FakeReceivers

DASHBOARD = "http://127.0.0.1:8000"


def client_for(**env: str) -> httpx.AsyncClient:
    settings = NotifierSettings(_env_file=None, **env)
    app = create_app(bootstrap(settings, targets=FakeJobs(), sender=FakeReceivers()))
    # The lifespan does not run: nothing connects.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"headers": {"Authorization": "Bearer wrong"}},
        {"headers": {"X-API-Key": "wrong"}},
        {"params": {"api_key": "wrong"}},
    ],
)
async def test_events_need_a_valid_key(kwargs: dict) -> None:
    async with client_for(MPR_API_KEYS="ops:right") as client:
        response = await client.get("/api/events", **kwargs)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "api_key" in error["message"]


async def test_bad_filter_is_400_with_reason() -> None:
    async with client_for(MPR_API_KEYS="ops:right") as client:
        response = await client.get(
            "/api/events", params={"api_key": "right", "job_id": "not-a-uuid"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_filter"
    assert "job_id must be a UUID" in error["message"]


async def test_unknown_path_has_the_same_error_shape() -> None:
    async with client_for() as client:
        response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["details"]) == ("not_found", None)
    assert "/api/events" in error["message"]


async def test_health_and_metrics_need_no_key() -> None:
    async with client_for(MPR_API_KEYS="ops:right") as client:
        health = await client.get("/api/health")
        metrics = await client.get("/metrics")
    assert health.json() == {"service": "notifier", "status": "ok"}
    assert "mpr_notifier_sse_clients 0.0" in metrics.text


async def test_not_started_is_not_ready() -> None:
    async with client_for() as client:
        response = await client.get("/api/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["rabbitmq"]["ok"] is False
    assert body["checks"]["rabbitmq"]["critical"] is True
    assert body["checks"]["database"] == {"ok": True, "critical": False, "detail": "ok"}


async def test_dashboard_origin_may_read_the_stream() -> None:
    async with client_for(MPR_API_KEYS="ops:right", CORS_ORIGINS=DASHBOARD) as client:
        preflight = await client.options(
            "/api/events",
            headers={
                "Origin": DASHBOARD,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id",
            },
        )
        refused = await client.get("/api/events", headers={"Origin": DASHBOARD})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == DASHBOARD
    assert "last-event-id" in preflight.headers["access-control-allow-headers"].lower()
    # Even a refusal is readable by the page, so it can tell the user about the key.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == DASHBOARD


@pytest.mark.parametrize("origins", ["", "http://127.0.0.1:9000"])
async def test_other_origins_get_no_cors_headers(origins: str) -> None:
    async with client_for(MPR_API_KEYS="ops:right", CORS_ORIGINS=origins) as client:
        response = await client.get("/api/events", headers={"Origin": DASHBOARD})
        preflight = await client.options(
            "/api/events",
            headers={"Origin": DASHBOARD, "Access-Control-Request-Method": "GET"},
        )
    assert response.status_code == 401
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


async def test_stream_writes_event_id_and_json_data() -> None:
    hub, metrics = EventHub(), Metrics()
    subscription = hub.subscribe(EventFilter())
    gen = stream(subscription, metrics, None)
    event_id = str(uuid.uuid4())
    hub.publish(id=event_id, event="job.completed", data={"type": "JobCompleted", "x": 1})
    first = await anext(gen)
    assert (first.event, first.id, json.loads(first.data)) == (
        "job.completed",
        event_id,
        {"type": "JobCompleted", "x": 1},
    )
    hub.close()  # shutdown ends the stream without a notice
    with pytest.raises(StopAsyncIteration):
        await anext(gen)


async def test_stream_ends_with_overflow_notice() -> None:
    hub, metrics = EventHub(client_queue_size=1), Metrics()
    subscription = hub.subscribe(EventFilter())
    gen = stream(subscription, metrics, None)
    hub.publish(id="a", event="job.progress", data={})
    assert (await anext(gen)).id == "a"
    hub.publish(id="b", event="job.progress", data={})
    hub.publish(id="c", event="job.progress", data={})  # overflows
    notice = await anext(gen)
    assert notice.event == "overflow"
    assert json.loads(notice.data)["last_event_id"] == "a"
    with pytest.raises(StopAsyncIteration):
        await anext(gen)


async def test_stream_starts_with_gap_notice_for_unknown_last_id() -> None:
    hub = EventHub()
    subscription = hub.subscribe(EventFilter(), last_event_id="gone")
    gen = stream(subscription, Metrics(), "gone")
    notice = await anext(gen)
    assert notice.event == "gap"
    assert json.loads(notice.data)["last_event_id"] == "gone"
    await gen.aclose()
