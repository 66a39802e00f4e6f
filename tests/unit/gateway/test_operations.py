"""Workers from heartbeats, the queue view and the last day's figures (fakes for every port)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from mpr_gateway.application.operations import QueueService, WorkerService
from mpr_gateway.domain.errors import Unavailable
from mpr_gateway.domain.jobs import JobRecord
from mpr_gateway.domain.workers import QueueDepth
from mpr_shared.contracts import JobSpec, WorkerHeartbeat, WorkerStopped
from tests.unit.gateway.fakes import (
    FakeJobFigures,
    FakeQueueProbe,
    FakeStore,
    FakeUnacked,
    FakeWorkers,
    asset,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def beat(worker: str = "w1", at: datetime = T0, **fields: object) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker=worker,
        host="h",
        pid=7,
        ffmpeg_version="5.1",
        started_at=T0,
        interval_seconds=10,
        version="0.1.0",
        occurred_at=at,
        **fields,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def workers(clock: Clock) -> WorkerService:
    return WorkerService(FakeWorkers(), timeout_seconds=30, clock=clock)


async def test_a_heartbeat_lists_the_replica_with_its_current_job(workers, clock):
    job_id = uuid4()
    await workers.heartbeat(beat(current_job_id=job_id, current_job_progress=12.5))
    [live] = await workers.live()
    assert (live.id, live.host, live.ffmpeg_version) == ("w1", "h", "5.1")
    assert (live.current_job_id, live.current_job_progress, live.status) == (job_id, 12.5, "busy")
    assert live.last_seen == clock.now


async def test_a_late_heartbeat_does_not_bring_back_an_older_state(workers, clock):
    job_id = uuid4()
    await workers.heartbeat(beat(at=T0 + timedelta(seconds=10)))
    await workers.heartbeat(beat(at=T0, current_job_id=job_id))  # older, delivered late
    [live] = await workers.live()
    assert live.current_job_id is None and live.status == "idle"


async def test_a_silent_replica_is_no_longer_listed_and_is_deleted_later(workers, clock):
    await workers.heartbeat(beat("old"))
    clock.now += timedelta(seconds=31)
    assert await workers.live() == []
    await workers.heartbeat(beat("new", at=clock.now))
    assert [w.id for w in await workers.live()] == ["new"]
    assert set(workers.registry.rows) == {"new"}  # the silent one's row is gone


async def test_worker_stopped_forgets_the_replica_but_not_a_later_incarnation(workers, clock):
    await workers.heartbeat(beat("w1", at=T0 + timedelta(seconds=5)))
    await workers.stopped(WorkerStopped(worker="w1", occurred_at=T0))  # before its last beat
    assert [w.id for w in await workers.live()] == ["w1"]
    await workers.stopped(WorkerStopped(worker="w1", occurred_at=T0 + timedelta(seconds=6)))
    assert await workers.live() == []


def job(status: str, finished: datetime | None, **fields: object) -> JobRecord:
    return JobRecord(
        id=uuid4(),
        source_bucket="in",
        source_key="a.mp4",
        spec=JobSpec(kind="audio"),
        output_bucket="out",
        output_key="a.m4a",
        created_at=T0,
        updated_at=T0,
        status=status,
        finished_at=finished,
        **fields,
    )


def queue_service(store: FakeStore, clock: Clock, depth=QueueDepth(3, 2), unacked=1):
    return QueueService(
        "mpr.transcoder.jobs",
        FakeQueueProbe(depth),
        FakeUnacked(unacked),
        FakeJobFigures(store),
        clock,
    )


async def test_queue_reports_broker_depth_and_active_jobs(clock):
    store = FakeStore()
    for status in ("queued", "queued", "running", "completed"):
        new = job(status, None)
        store.jobs[new.id] = new
    view = await queue_service(store, clock).depth()
    assert (view.queue, view.ready, view.unacked, view.consumers) == (
        "mpr.transcoder.jobs",
        3,
        1,
        2,
    )
    assert view.jobs == {"queued": 2, "running": 1}


async def test_queue_without_a_broker_is_unavailable(clock):
    service = queue_service(FakeStore(), clock, depth=Unavailable("broker down"))
    with pytest.raises(Unavailable):
        await service.depth()


async def test_stats_count_the_last_24_hours_with_median_speed_and_bytes(clock):
    store = FakeStore()
    source = asset("a.mp4")
    store.assets[source.id] = replace(source, size_bytes=1000)
    recent = T0 - timedelta(hours=1)
    for new in (
        job("completed", recent, speed=2.0, bytes_out=300, asset_id=source.id),
        job("completed", recent, speed=4.0, bytes_out=200, asset_id=source.id),
        job("completed", recent, speed=9.0, bytes_out=100),
        job("failed", recent),
        job("cancelled", recent),
        job("completed", T0 - timedelta(hours=25), speed=100.0, bytes_out=5),  # too old
        job("running", None),
    ):
        store.jobs[new.id] = new
    stats = await queue_service(store, clock).stats()
    assert (stats.window_hours, stats.completed, stats.failed, stats.cancelled) == (24, 3, 1, 1)
    assert (stats.median_speed, stats.bytes_in, stats.bytes_out) == (4.0, 2000, 600)


async def test_the_management_api_reads_unacked_and_answers_none_on_failure():
    import httpx

    from mpr_gateway.adapters.rabbit_management import ManagementApi, amqp_vhost

    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if "broken" in request.url.path:
            return httpx.Response(500)
        return httpx.Response(200, json={"messages_unacknowledged": 4})

    vhost = amqp_vhost("amqp://guest:guest@127.0.0.1:5672/mpr-test-1")
    api = ManagementApi(
        "http://ops:s%40cret@127.0.0.1:15672/", vhost, transport=httpx.MockTransport(answer)
    )
    assert await api.unacked("mpr.transcoder.jobs") == 4
    assert asked[0].url.path == "/api/queues/mpr-test-1/mpr.transcoder.jobs"
    assert asked[0].headers["authorization"] == httpx.BasicAuth("ops", "s@cret")._auth_header
    assert await api.unacked("broken") is None
    assert amqp_vhost("amqp://127.0.0.1:5672/") == "/"
    await api.close()
