"""The gateway's subscribers on FastStream's in-memory broker (TestRabbitBroker).

Built by ``bootstrap`` with fakes for the database and S3 ports. Job events are published to
the events exchange with the queue's own name as routing key, as a retry comes back: the
handler is chosen by the message's type (x-mpr-type), never by a routing key kept for tests.
"""

from __future__ import annotations

import asyncio
from functools import partial
from uuid import uuid4

import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from mpr_gateway.application.job_request import JobRequest
from mpr_gateway.bootstrap import Container, bootstrap
from mpr_gateway.settings import GatewaySettings
from mpr_shared.contracts import (
    CreateJob,
    Event,
    JobCompleted,
    JobProgress,
    JobQueued,
    JobSpec,
    JobStarted,
    OutputFile,
    ProcessMedia,
)
from mpr_shared.messaging import ERROR_HEADER, ERROR_TYPE_HEADER, publish, send_command
from mpr_shared.topology import (
    COMMANDS,
    DEAD_LETTER,
    EVENTS,
    GATEWAY_JOB_EVENTS,
    GATEWAY_JOB_REQUESTS,
    dead_letter_queue,
)
from tests.unit.gateway.fakes import FakePresigner, FakeSources, FakeStore, FakeUnitOfWork, asset


@pytest.fixture
def store() -> FakeStore:
    s = FakeStore()
    a = asset("v/a.mp4", bucket="mpr-media-in")
    s.assets[a.id] = a
    return s


@pytest.fixture
def container(store: FakeStore) -> Container:
    settings = GatewaySettings(_env_file=None, S3_BUCKET_IN="mpr-media-in")
    return bootstrap(
        settings,
        uow=partial(FakeUnitOfWork, store),
        presigner=FakePresigner(),
        sources=FakeSources(),
    )


def _dead_letters(broker: RabbitBroker, queue: RabbitQueue) -> list[dict]:
    seen: list[dict] = []

    @broker.subscriber(dead_letter_queue(queue), DEAD_LETTER)
    async def dlq(message: RabbitMessage) -> None:
        seen.append(message.headers)

    return seen


def create_job(idempotency_key: str, **fields: object) -> CreateJob:
    return CreateJob(
        source_bucket="mpr-media-in",
        source_key="v/a.mp4",
        spec=JobSpec(kind="transcode", preset="h264-480p"),
        idempotency_key=idempotency_key,
        requested_by="catalog:auto-transcode",
        **fields,
    )


async def _to_job_events(broker: RabbitBroker, event: Event) -> None:
    await publish(broker, event, EVENTS, routing_key=GATEWAY_JOB_EVENTS.name)


async def test_events_move_the_job_and_replays_change_nothing(container: Container, store):
    job = (await container.jobs.create(JobRequest(source_key="v/a.mp4", kind="audio"))).job
    out = OutputFile(key="k.m4a", bucket="mpr-media-out", size_bytes=5)
    async with TestRabbitBroker(container.broker) as br:
        for event in (
            JobStarted(job_id=job.id, worker="w1"),
            JobProgress(job_id=job.id, percent=60),
            JobProgress(job_id=job.id, percent=20),  # late: ignored
            JobCompleted(job_id=job.id, outputs=[out]),
            JobStarted(job_id=job.id, worker="w2"),  # replay: ignored
        ):
            await _to_job_events(br, event)
    final = store.jobs[job.id]
    assert (final.status, final.progress, final.worker) == ("completed", 100.0, "w1")
    assert final.outputs == [out.model_dump(mode="json")]
    registry = container.metrics.registry
    labels = {"kind": "audio", "preset": "audio-aac", "state": "completed"}
    assert registry.get_sample_value("mpr_gateway_jobs_finished_total", labels) == 1.0


async def test_malformed_event_is_dead_lettered_with_the_reason(container: Container):
    dead = _dead_letters(container.broker, GATEWAY_JOB_EVENTS)
    async with TestRabbitBroker(container.broker) as br:
        await br.publish(
            {"job_id": "not-a-uuid"},
            exchange=EVENTS,
            routing_key=GATEWAY_JOB_EVENTS.name,
            headers={"x-mpr-type": "JobStarted"},
        )
        await asyncio.sleep(0)
    assert len(dead) == 1
    assert "job_id" in dead[0][ERROR_HEADER] and "worker" in dead[0][ERROR_HEADER]


async def test_event_for_an_unknown_job_is_dead_lettered(container: Container):
    dead = _dead_letters(container.broker, GATEWAY_JOB_EVENTS)
    async with TestRabbitBroker(container.broker) as br:
        await _to_job_events(br, JobStarted(job_id=uuid4(), worker="w"))
    assert len(dead) == 1 and "no job" in dead[0][ERROR_HEADER]


async def test_a_type_no_handler_takes_is_dead_lettered_not_skipped(container: Container, store):
    # The gateway's own JobQueued is not bound to its queue; if one arrives anyway (a stale
    # binding), nothing applies it in silence: it is dead-lettered with the reason.
    dead = _dead_letters(container.broker, GATEWAY_JOB_EVENTS)
    stray = JobQueued(job_id=uuid4(), source_key="v/a.mp4", spec=JobSpec(kind="audio"))
    async with TestRabbitBroker(container.broker) as br:
        await _to_job_events(br, stray)
    [headers] = dead
    assert (
        headers[ERROR_HEADER]
        == f"no handler for type 'JobQueued' on queue {GATEWAY_JOB_EVENTS.name}"
    )
    assert headers[ERROR_TYPE_HEADER] == "SubscriberNotFound"


async def test_create_job_command_creates_one_job(container: Container, store):
    command = create_job("auto:1", priority=2)
    async with TestRabbitBroker(container.broker) as br:
        await send_command(br, command)
        await send_command(br, command)  # redelivery: the same job
    [job] = store.jobs.values()
    assert job.preset == "h264-480p" and job.priority == 2
    assert job.idempotency_key == "cmd:auto:1"
    [process] = store.messages(ProcessMedia)
    assert process.spec == command.spec  # the command's spec, passed through as it came


async def test_invalid_create_job_is_dead_lettered(container: Container, store):
    dead = _dead_letters(container.broker, GATEWAY_JOB_REQUESTS)
    command = create_job("auto:2")
    body = command.model_dump(mode="json")
    body["spec"]["preset"] = "no-such-preset"  # the contract refuses it: only raw bytes can
    async with TestRabbitBroker(container.broker) as br:
        await br.publish(body, exchange=COMMANDS, routing_key=CreateJob.ROUTING_KEY)
    assert store.jobs == {}
    assert len(dead) == 1 and "unknown preset 'no-such-preset'" in dead[0][ERROR_HEADER]


async def test_worker_heartbeats_and_stops_keep_the_workers_table(store):
    from datetime import UTC, datetime

    from mpr_shared.contracts import WorkerHeartbeat, WorkerStopped
    from mpr_shared.topology import GATEWAY_WORKERS
    from tests.unit.gateway.fakes import FakeWorkers

    registry = FakeWorkers()
    settings = GatewaySettings(_env_file=None, S3_BUCKET_IN="mpr-media-in")
    container = bootstrap(
        settings,
        uow=partial(FakeUnitOfWork, store),
        presigner=FakePresigner(),
        sources=FakeSources(),
        worker_registry=registry,
    )
    dead = _dead_letters(container.broker, GATEWAY_WORKERS)
    job_id = uuid4()
    beat = WorkerHeartbeat(
        worker="replica-1",
        host="h",
        pid=1,
        current_job_id=job_id,
        started_at=datetime.now(UTC),
        interval_seconds=10,
        version="0.1.0",
    )
    async with TestRabbitBroker(container.broker) as br:
        await publish(br, beat, EVENTS, routing_key=GATEWAY_WORKERS.name)
        [live] = await container.workers.live()
        assert (live.id, live.current_job_id, live.status) == ("replica-1", job_id, "busy")
        await publish(
            br, WorkerStopped(worker="replica-1"), EVENTS, routing_key=GATEWAY_WORKERS.name
        )
        assert await container.workers.live() == []
        await br.publish(
            {"worker": "x"},
            exchange=EVENTS,
            routing_key=GATEWAY_WORKERS.name,
            headers={"x-mpr-type": "WorkerHeartbeat"},
        )
    assert len(dead) == 1 and "host" in dead[0][ERROR_HEADER]
