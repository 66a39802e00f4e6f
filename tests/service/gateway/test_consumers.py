"""The gateway's consumers on FastStream's in-memory broker (TestRabbitBroker)."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from faststream.rabbit import TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from mpr_gateway.app import build_broker
from mpr_gateway.application.jobs import JobRequest, JobService
from mpr_gateway.settings import GatewaySettings
from mpr_shared.contracts import (
    CreateJob,
    JobCompleted,
    JobProgress,
    JobSpec,
    JobStarted,
    OutputFile,
    ProcessMedia,
)
from mpr_shared.messaging import ERROR_HEADER, publish_event, send_command
from mpr_shared.topology import (
    COMMANDS,
    DEAD_LETTER,
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
def service(store: FakeStore) -> JobService:
    return JobService(
        uow=lambda: FakeUnitOfWork(store),
        bucket_in="mpr-media-in",
        bucket_out="mpr-media-out",
        presigner=FakePresigner(),
        sources=FakeSources(),
    )


@pytest.fixture
def broker(service: JobService):
    return build_broker(GatewaySettings(), lambda: service)


def _dead_letters(broker, queue) -> list:
    seen: list = []

    @broker.subscriber(dead_letter_queue(queue), DEAD_LETTER)
    async def dlq(message: RabbitMessage) -> None:
        seen.append(message.headers)

    return seen


async def test_events_move_the_job_and_replays_change_nothing(broker, service, store):
    job = (await service.create(JobRequest(source_key="v/a.mp4", kind="audio"))).job
    out = OutputFile(key="k.m4a", bucket="mpr-media-out", size_bytes=5)
    async with TestRabbitBroker(broker) as br:
        for event in (
            JobStarted(job_id=job.id, worker="w1"),
            JobProgress(job_id=job.id, percent=60),
            JobProgress(job_id=job.id, percent=20),  # late: ignored
            JobCompleted(job_id=job.id, outputs=[out]),
            JobStarted(job_id=job.id, worker="w2"),  # replay: ignored
        ):
            await publish_event(br, event)
    final = store.jobs[job.id]
    assert (final.status, final.progress, final.worker) == ("completed", 100.0, "w1")
    assert final.outputs == [out.model_dump(mode="json")]


async def test_malformed_event_is_dead_lettered_with_the_reason(broker):
    dead = _dead_letters(broker, GATEWAY_JOB_EVENTS)
    async with TestRabbitBroker(broker) as br:
        await br.publish({"job_id": "not-a-uuid"}, exchange="mpr.events", routing_key="job.started")
        await asyncio.sleep(0)
    assert len(dead) == 1
    assert "job_id" in dead[0][ERROR_HEADER] and "worker" in dead[0][ERROR_HEADER]


async def test_event_for_an_unknown_job_is_dead_lettered(broker):
    dead = _dead_letters(broker, GATEWAY_JOB_EVENTS)
    async with TestRabbitBroker(broker) as br:
        await publish_event(br, JobStarted(job_id=uuid4(), worker="w"))
    assert len(dead) == 1 and "no job" in dead[0][ERROR_HEADER]


async def test_create_job_command_creates_one_job(broker, store):
    command = CreateJob(
        source_bucket="mpr-media-in",
        source_key="v/a.mp4",
        spec=JobSpec(kind="transcode", preset="h264-480p"),
        idempotency_key="auto:1",
        requested_by="catalog:auto-transcode",
        priority=2,
    )
    async with TestRabbitBroker(broker) as br:
        await send_command(br, command)
        await send_command(br, command)  # redelivery: the same job
    [job] = store.jobs.values()
    assert job.preset == "h264-480p" and job.priority == 2
    assert job.idempotency_key == "cmd:auto:1"
    assert len(store.messages(ProcessMedia)) == 1


async def test_invalid_create_job_is_dead_lettered(broker, store):
    dead = _dead_letters(broker, GATEWAY_JOB_REQUESTS)
    command = CreateJob(
        source_bucket="mpr-media-in",
        source_key="v/a.mp4",
        spec=JobSpec(kind="transcode", preset="h264-480p"),
        idempotency_key="auto:2",
        requested_by="catalog",
    )
    body = command.model_dump(mode="json")
    body["spec"]["preset"] = "no-such-preset"  # the contract refuses it: only raw bytes can
    async with TestRabbitBroker(broker) as br:
        await br.publish(body, exchange=COMMANDS, routing_key=CreateJob.ROUTING_KEY)
    assert store.jobs == {}
    assert len(dead) == 1 and "unknown preset 'no-such-preset'" in dead[0][ERROR_HEADER]
