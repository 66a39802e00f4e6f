"""SSE against the real broker: names, ids, filters, Last-Event-ID replay, auth."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

from mpr_notifier.application.broadcast import event_payload
from mpr_shared.contracts import (
    AssetRegistered,
    Event,
    JobCompleted,
    JobProgress,
    JobStarted,
    OutputFile,
)
from mpr_shared.messaging import publish_event
from mpr_shared.topology import EVENTS
from tests.integration.notifier.conftest import (
    API_KEY,
    DASHBOARD,
    Running,
    metric,
    metric_reaches,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PROGRESS_RECEIVED = 'mpr_notifier_events_received_total{event="job.progress"}'


def completed(job: uuid.UUID) -> JobCompleted:
    return JobCompleted(job_id=job, outputs=[OutputFile(key="o.mp4", bucket="b", size_bytes=3)])


async def read(source, count: int) -> list[ServerSentEvent]:
    """The next `count` events (pings are comments and never show up here)."""
    received = []
    async with asyncio.timeout(30):
        async for sse in source.aiter_sse():
            received.append(sse)
            if len(received) == count:
                return received
    raise AssertionError(f"stream ended after {len(received)} of {count} events")


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))


async def publish_all(broker, events: list[Event]) -> None:
    for event in events:
        await publish_event(broker, event)


async def test_events_arrive_named_by_routing_key_in_order(notifier: Running, publisher) -> None:
    job, other = uuid.uuid4(), uuid.uuid4()
    ours: list[Event] = [JobStarted(job_id=job, worker="w1")]
    ours += [JobProgress(job_id=job, percent=p) for p in (10, 40, 70)]
    ours.append(completed(job))
    async with (
        client() as http,
        aconnect_sse(
            http, "GET", f"{notifier.url}/api/events", params={"job_id": str(job)}, headers=AUTH
        ) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        await publish_event(publisher, JobStarted(job_id=other, worker="w2"))
        await publish_all(publisher, ours)
        received = await read(source, len(ours))
    assert [s.event for s in received] == [e.ROUTING_KEY for e in ours]
    assert [s.id for s in received] == [str(e.id) for e in ours]
    assert [s.json() for s in received] == [event_payload(e) for e in ours]
    assert received[-1].json()["type"] == "JobCompleted"


async def test_types_filter_and_query_key(notifier: Running, publisher) -> None:
    job, asset = uuid.uuid4(), uuid.uuid4()
    registered = AssetRegistered(
        asset_id=asset, bucket="in", key="a.mp4", size_bytes=1, etag="e", media_type="video"
    )
    done = completed(job)
    params = {"types": "job.completed,AssetRegistered", "api_key": API_KEY}
    async with (
        client() as http,
        aconnect_sse(http, "GET", f"{notifier.url}/api/events", params=params) as source,
    ):
        await publish_event(publisher, JobProgress(job_id=job, percent=5))
        await publish_event(publisher, registered)
        await publish_event(publisher, done)
        received = await read(source, 2)
    # Other tests' events may pass the type filter too; ours arrive in order among them.
    ids = [s.id for s in received if s.id in {str(registered.id), str(done.id)}]
    assert ids == [str(registered.id), str(done.id)][: len(ids)]
    assert all(s.event in {"job.completed", "asset.registered"} for s in received)


async def test_a_dashboard_page_reads_the_stream_across_origins(
    notifier: Running, publisher
) -> None:
    """What a browser's EventSource at the gateway's origin sends: Origin and ?api_key=."""
    job = uuid.uuid4()
    started = JobStarted(job_id=job, worker="w1")
    params = {"job_id": str(job), "api_key": API_KEY}
    headers = {"Origin": DASHBOARD, "Accept": "text/event-stream"}
    async with (
        client() as http,
        aconnect_sse(
            http, "GET", f"{notifier.url}/api/events", params=params, headers=headers
        ) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["access-control-allow-origin"] == DASHBOARD
        await publish_event(publisher, started)
        [received] = await read(source, 1)
    assert received.id == str(started.id)


async def test_last_event_id_replays_what_was_missed(notifier: Running, publisher) -> None:
    job = uuid.uuid4()
    first, *missed = [JobProgress(job_id=job, percent=p) for p in (1, 2, 3)]
    url, params = f"{notifier.url}/api/events", {"job_id": str(job)}
    async with client() as http:
        async with aconnect_sse(http, "GET", url, params=params, headers=AUTH) as source:
            await publish_event(publisher, first)
            [got] = await read(source, 1)
        assert got.id == str(first.id)
        # Disconnected: these reach the notifier's buffer while no client listens.
        before = await metric(notifier, PROGRESS_RECEIVED)
        await publish_all(publisher, missed)
        await metric_reaches(notifier, PROGRESS_RECEIVED, before + len(missed))
        resume = {**AUTH, "Last-Event-ID": got.id}
        async with aconnect_sse(http, "GET", url, params=params, headers=resume) as source:
            replayed = await read(source, len(missed))
    assert [s.id for s in replayed] == [str(e.id) for e in missed]


async def test_unknown_last_event_id_gets_a_gap_notice(notifier: Running) -> None:
    headers = {**AUTH, "Last-Event-ID": str(uuid.uuid4())}
    async with (
        client() as http,
        aconnect_sse(http, "GET", f"{notifier.url}/api/events", headers=headers) as source,
    ):
        [notice] = await read(source, 1)
    assert notice.event == "gap"
    assert "replay buffer" in json.loads(notice.data)["detail"]


async def test_events_need_an_api_key(notifier: Running) -> None:
    async with client() as http:
        missing = await http.get(f"{notifier.url}/api/events")
        wrong = await http.get(f"{notifier.url}/api/events", headers={"X-API-Key": "nope"})
        bad_filter = await http.get(
            f"{notifier.url}/api/events", params={"types": "nonsense!"}, headers=AUTH
        )
    assert missing.status_code == wrong.status_code == 401
    assert bad_filter.status_code == 400


async def test_ready_health_and_metrics(notifier: Running) -> None:
    async with client() as http:
        ready = await http.get(f"{notifier.url}/api/ready")
        health = await http.get(f"{notifier.url}/api/health")
        metrics = await http.get(f"{notifier.url}/metrics")
    assert ready.status_code == 200
    assert ready.json() == {
        "service": "notifier",
        "status": "ready",
        "checks": {
            "rabbitmq": {"ok": True, "critical": True, "detail": "ok"},
            "database": {"ok": True, "critical": False, "detail": "ok"},
        },
    }
    assert health.json() == {"service": "notifier", "status": "ok"}
    assert "mpr_notifier_sse_clients" in metrics.text
    assert "mpr_notifier_events_delivered_total" in metrics.text


async def test_malformed_live_event_is_dead_lettered(
    notifier: Running, publisher, amqp_url: str
) -> None:
    marker = uuid.uuid4().hex
    await publisher.publish(
        {"marker": marker}, exchange=EVENTS, routing_key="job.completed", persist=True
    )
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("mpr.notifier.live.dlq", ensure=False)
        async with asyncio.timeout(30):
            while True:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None and marker in message.body.decode():
                    break
                if message is None:
                    await asyncio.sleep(0.05)
    finally:
        await connection.close()
    assert "job_id" in message.headers["x-mpr-error"]
    assert message.headers["x-mpr-queue"] == f"mpr.notifier.live.{notifier.settings.instance_id}"
