"""Job progress, workers, queue and stats on the real RabbitMQ and database (SQLite and
PostgreSQL): events published as a transcoder publishes them, heartbeats by the replica's own
Heartbeat, the queue read by a passive declare."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from sqlalchemy import func, select

from mpr_shared.contracts import (
    JobCompleted,
    JobProgress,
    JobStarted,
    OutputFile,
)
from mpr_shared.db.models import Worker
from mpr_shared.messaging import make_broker
from mpr_shared.topology import TRANSCODER_JOBS
from mpr_transcoder.adapters.broker import BrokerEventPublisher
from mpr_transcoder.adapters.ffmpeg import ffmpeg_version
from mpr_transcoder.application.heartbeat import Heartbeat, Replica
from tests.integration.gateway.conftest import (
    AUTH,
    Stack,
    eventually,
    gateway_settings,
    running_stack,
)

WORKER_TIMEOUT = 1.0  # seconds: short, so a silent replica is forgotten within the test


@pytest.fixture
async def stack(service_env: dict, database_url: str, buckets) -> AsyncIterator[Stack]:
    settings = gateway_settings(
        service_env, database_url, WORKER_TIMEOUT_SECONDS=str(WORKER_TIMEOUT)
    )
    async for s in running_stack(settings, buckets):
        yield s


@pytest.fixture
async def transcoder(stack: Stack) -> AsyncIterator[BrokerEventPublisher]:
    """What a replica publishes with: its confirmed event publisher on the real broker."""
    broker = make_broker(stack.settings.amqp_url.get_secret_value(), service="test-transcoder")
    await broker.connect()
    yield BrokerEventPublisher(broker)
    await broker.stop()


@contextlib.asynccontextmanager
async def beating(heartbeat: Heartbeat) -> AsyncIterator[None]:
    task = asyncio.create_task(heartbeat.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def get(stack: Stack, path: str) -> dict:
    response = await stack.client.get(path, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_running_job_shows_its_figures_and_a_completed_one_its_log_tail(
    stack: Stack, transcoder: BrokerEventPublisher
):
    asset_id = await stack.add_asset("p/clip.mp4", size_bytes=5000)
    created = await stack.client.post(
        "/api/jobs", json={"asset_id": str(asset_id), "kind": "audio"}, headers=AUTH
    )
    job = created.json()
    envelope = {"job_id": job["id"], "correlation_id": job["id"]}
    await transcoder.publish(JobStarted(**envelope, worker="replica-t"))
    await transcoder.publish(
        JobProgress(
            **envelope, percent=40, out_time_seconds=1.2, fps=48.0, speed=2.5, eta_seconds=1.8
        )
    )

    async def running() -> dict | None:
        seen = await get(stack, f"/api/jobs/{job['id']}")
        # JobStarted and JobProgress are applied concurrently: either may land first.
        return seen if seen["fps"] is not None and seen["worker"] else None

    seen = await eventually(running, seconds=10, every=0.05)
    assert (seen["status"], seen["progress"], seen["worker"]) == ("running", 40.0, "replica-t")
    assert (seen["fps"], seen["speed"], seen["eta_seconds"]) == (48.0, 2.5, 1.8)
    assert seen["out_time_seconds"] == 1.2 and seen["log_tail"] == []
    [listed] = (await get(stack, "/api/jobs?status=running"))["items"]
    assert listed["speed"] == 2.5

    tail = ["Output #0, ipod, to 'the output':", "[aac @ 0x1] Qavg: 105.398"]
    output = OutputFile(key="p/out.m4a", bucket=stack.bucket_out, size_bytes=700)
    await transcoder.publish(JobCompleted(**envelope, outputs=[output], log_tail=tail))

    async def completed() -> dict | None:
        seen = await get(stack, f"/api/jobs/{job['id']}")
        return seen if seen["status"] == "completed" else None

    done = await eventually(completed, seconds=10, every=0.05)
    assert done["log_tail"] == tail and done["eta_seconds"] == 0.0 and done["fps"] == 48.0
    stats = await get(stack, "/api/stats")
    assert stats == {
        "window_hours": 24,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "median_speed": 2.5,
        "bytes_in": 5000,
        "bytes_out": 700,
    }
    query = f'{{ job(id: "{job["id"]}") {{ fps speed etaSeconds logTail }} stats {{ completed }} }}'
    graphql = await stack.client.post("/graphql", json={"query": query}, headers=AUTH)
    assert graphql.json()["data"] == {
        "job": {"fps": 48.0, "speed": 2.5, "etaSeconds": 0.0, "logTail": tail},
        "stats": {"completed": 1},
    }


async def test_a_replicas_heartbeat_lists_it_until_it_falls_silent_or_stops(
    stack: Stack, transcoder: BrokerEventPublisher
):
    job_id = uuid.uuid4()
    heartbeat = Heartbeat(
        replica=Replica("replica-hb", "host-1", 4321, "0.1.0", datetime.now(UTC)),
        publisher=transcoder,
        current_job=lambda: (job_id, 25.0),
        ffmpeg_version=ffmpeg_version,
        interval=0.2,
    )

    async def listed() -> list[dict]:
        return (await get(stack, "/api/workers"))["items"]

    async with beating(heartbeat):
        [worker] = await eventually(listed, seconds=10, every=0.05)
    assert (worker["id"], worker["host"], worker["status"]) == ("replica-hb", "host-1", "busy")
    assert worker["current_job_id"] == str(job_id) and worker["current_job_progress"] == 25.0
    assert worker["ffmpeg_version"].startswith(("5.", "6.", "7."))

    async def gone() -> bool:
        return await listed() == []

    assert await eventually(gone, seconds=10, every=0.1)  # silent for WORKER_TIMEOUT
    heartbeat.replica = Replica("replica-2", "host-2", 1, "0.1.0", datetime.now(UTC))
    heartbeat.current_job = lambda: None
    async with beating(heartbeat):
        [worker] = await eventually(listed, seconds=10, every=0.05)
        assert (worker["id"], worker["status"]) == ("replica-2", "idle")
    async with stack.sessions() as session:  # the silent replica's row is deleted, not hidden
        assert await session.scalar(select(func.count()).select_from(Worker)) == 1
    await heartbeat.stopped("signal")

    async def deleted() -> bool:  # no heartbeat runs now: only WorkerStopped deletes the row
        async with stack.sessions() as session:
            return await session.scalar(select(func.count()).select_from(Worker)) == 0

    assert await eventually(deleted, seconds=10, every=0.05)
    graphql = await stack.client.post(
        "/graphql", json={"query": "{ workers { id } }"}, headers=AUTH
    )
    assert graphql.json()["data"] == {"workers": []}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_queue_reports_ready_jobs_and_consumers_and_config_the_limits(
    stack: Stack, amqp_url: str
):
    config = await get(stack, "/api/config")
    assert config["events_url"] == "http://127.0.0.1:8001" and config["version"]
    settings = stack.settings
    assert config["upload"] == {
        "max_bytes": settings.max_upload_bytes,
        "multipart_threshold_bytes": settings.upload_multipart_threshold_bytes,
        "part_size_bytes": settings.upload_part_size_bytes,
    }
    assert (await stack.client.get("/api/config")).status_code == 401
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    jobs_queue = await channel.get_queue(TRANSCODER_JOBS.name, ensure=False)
    await jobs_queue.purge()  # earlier tests' jobs on this vhost must not count
    try:
        asset_id = await stack.add_asset("q/clip.mp4")
        created = await stack.client.post(
            "/api/jobs", json={"asset_id": str(asset_id), "kind": "audio"}, headers=AUTH
        )
        assert created.status_code == 202

        async def ready() -> dict | None:
            queue = await get(stack, "/api/queue")
            return queue if queue["ready"] == 1 else None

        queue = await eventually(ready, seconds=10, every=0.05)
        assert queue == {
            "queue": TRANSCODER_JOBS.name,
            "ready": 1,
            "unacked": None,  # RABBITMQ_MANAGEMENT_URL is not set
            "consumers": 0,
            "jobs": {"queued": 1, "running": 0},
        }
        await channel.set_qos(prefetch_count=1)
        held: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await jobs_queue.consume(held.put)  # a "replica" that holds the job unacked
        await held.get()
        queue = await get(stack, "/api/queue")
        assert (queue["ready"], queue["consumers"]) == (0, 1)
        graphql = await stack.client.post(
            "/graphql", json={"query": "{ queue { ready consumers } }"}, headers=AUTH
        )
        assert graphql.json()["data"] == {"queue": {"ready": 0, "consumers": 1}}
    finally:
        await connection.close()
        cleanup = await aio_pika.connect_robust(amqp_url)
        await (await (await cleanup.channel()).get_queue(TRANSCODER_JOBS.name)).purge()
        await cleanup.close()
