"""Executor switching against fake ports: the policy, the outbox targets, cancel, republish."""

from __future__ import annotations

import re
from dataclasses import replace
from uuid import uuid4

import pytest

from mpr_gateway.adapters.stepfunctions import callback_url, execution_arn
from mpr_gateway.application.job_request import JobRequest
from mpr_gateway.application.jobs import JobService, Outcome
from mpr_gateway.domain import jobs as machine
from mpr_gateway.domain.errors import InvalidRequest
from mpr_gateway.domain.executors import Executor, ExecutorPolicy, execution_name
from mpr_gateway.domain.jobs import JobState
from mpr_gateway.metrics import GatewayMetrics
from mpr_shared.contracts import (
    CancelJob,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    JobStatus,
)
from tests.unit.gateway.conftest import job_service
from tests.unit.gateway.fakes import FakeStore, asset

SFN = Executor.STEPFUNCTIONS
RMQ = Executor.RABBITMQ
BOTH = ExecutorPolicy.of(RMQ, [SFN], 300.0)


@pytest.fixture
def service(store: FakeStore, wakes: list[int], metrics: GatewayMetrics) -> JobService:
    return job_service(store, wakes, metrics, executors=BOTH)


@pytest.fixture
def clip(store: FakeStore):
    a = asset("v/a.mp4", duration=10.0)
    store.assets[a.id] = a
    return a


def request(**kw) -> JobRequest:
    return JobRequest(**{"source_key": "v/a.mp4", "kind": "audio", **kw})


def test_the_policy_names_the_allowed_executors_and_the_lambdas_budget() -> None:
    only_rabbit = ExecutorPolicy()
    with pytest.raises(InvalidRequest, match="not allowed on this deployment; allowed: rabbitmq"):
        only_rabbit.choose(SFN, 10.0)
    assert BOTH.choose(None, None) is RMQ and BOTH.choose(SFN, 300.0) is SFN
    with pytest.raises(InvalidRequest, match=r"lasts 3720 s.*up to 300 s.*use executor rabbitmq"):
        BOTH.choose(SFN, 3720.0)
    with pytest.raises(InvalidRequest, match="duration is unknown") as unknown:
        BOTH.choose(SFN, None)
    assert unknown.value.details["allowed"] == ["rabbitmq", "stepfunctions"]
    lambda_only = ExecutorPolicy.of(SFN, [], 300.0)
    with pytest.raises(InvalidRequest) as no_hint:
        lambda_only.choose(None, 900.0)
    assert "use executor" not in no_hint.value.message  # nothing else to suggest


def test_execution_names_are_valid_and_unique_per_attempt() -> None:
    job_id = uuid4()
    names = {execution_name(job_id, attempt) for attempt in (1, 2, 999)}
    assert len(names) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,80}", n) for n in names)
    machine_arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:mpr-lambda-transcoder"
    assert execution_arn(machine_arn, "x-1") == (
        "arn:aws:states:eu-west-1:123456789012:execution:mpr-lambda-transcoder:x-1"
    )
    assert callback_url("https://mpr.example.com/", job_id) == (
        f"https://mpr.example.com/api/jobs/{job_id}/callback"
    )


async def test_a_stepfunctions_job_sends_process_media_to_its_relay(service, store, clip):
    job = (await service.create(request(executor="stepfunctions"))).job
    assert job.executor == "stepfunctions"
    assert store.via(SFN) == ["ProcessMedia"]
    assert store.via(RMQ) == ["JobQueued"]  # the event goes to mpr.events as always
    rabbit = (await service.create(request())).job
    assert rabbit.executor == "rabbitmq"
    assert store.via(RMQ) == ["JobQueued", "ProcessMedia", "JobQueued"]


async def test_cancel_stops_the_execution_and_cancels_a_running_job_at_once(service, store, clip):
    job = (await service.create(request(executor="stepfunctions"))).job
    await service.apply_event(JobStarted(job_id=job.id, worker="lambda:1"), republish=True)
    cancelled = await service.cancel(job.id)
    assert cancelled.status == JobStatus.CANCELLED == store.jobs[job.id].status
    [stop] = store.messages(CancelJob)
    assert (stop.job_id, stop.attempt) == (job.id, 1)
    assert store.via(SFN) == ["ProcessMedia", "CancelJob"]
    assert store.via(RMQ)[-1] == "JobCancelled"
    # The Lambda's late report is ignored and republishes nothing.
    late = JobCompleted(job_id=job.id, outputs=[])
    assert await service.apply_event(late, republish=True) is Outcome.IGNORED
    assert store.messages(JobCompleted) == []
    retried = await service.retry(job.id)
    assert retried.executor == "stepfunctions" and store.via(SFN)[-1] == "ProcessMedia"


async def test_callback_events_are_republished_once_only_when_they_change_the_job(
    service, store, clip, wakes
):
    job = (await service.create(request(executor="stepfunctions"))).job
    events = [
        JobStarted(job_id=job.id, worker="lambda:1"),
        JobProgress(job_id=job.id, percent=40),
        JobProgress(job_id=job.id, percent=20),  # out of order: changes nothing
        JobCompleted(job_id=job.id, outputs=[]),
    ]
    for event in events + events:  # every callback posted twice
        await service.apply_event(event, republish=True)
    republished = [m for _, m, _ in store.outbox if m.id in {e.id for e in events}]
    assert republished == [events[0], events[1], events[3]]
    assert len(wakes) == 1 + 3  # the create, then each republished event
    # What the gateway's own subscriber then receives back is a no-op.
    for event in events:
        assert await service.apply_event(event) is Outcome.IGNORED


def test_an_applied_event_applied_again_changes_nothing() -> None:
    """Why the gateway may consume the events it republished: decide() is idempotent."""
    job_id = uuid4()
    state = JobState(JobStatus.QUEUED, 1, 0.0)
    for event in (
        JobStarted(job_id=job_id, worker="lambda:1"),
        JobProgress(job_id=job_id, percent=55.5),
        JobProgress(job_id=job_id, percent=100.0),
        JobFailed(job_id=job_id, reason="x"),
        JobCancelled(job_id=job_id),
    ):
        for start in (state, JobState(JobStatus.RUNNING, 1, 10.0, "lambda:1")):
            transition = machine.decide(start, event)
            if transition is None:
                continue
            after = JobState(
                transition.status,
                transition.attempt,
                transition.progress,
                transition.changes.get("worker", start.worker),
            )
            assert machine.decide(after, event) is None, (start, event)


async def test_a_refused_dispatch_fails_the_job_and_tells_everyone(service, store, clip):
    job = (await service.create(request(executor="stepfunctions"))).job
    reason = "Step Functions refused the job 8 times: AccessDeniedException: not authorized"
    assert await service.dispatch_refused(job.id, 1, reason) is Outcome.APPLIED
    failed = store.jobs[job.id]
    assert (failed.status, failed.error) == ("failed", reason)
    [event] = store.messages(JobFailed)
    assert event.retryable and event.reason == reason
    # A refusal of an attempt that is gone (retried meanwhile) changes nothing.
    store.jobs[job.id] = replace(failed, attempt=2, status="queued")
    assert await service.dispatch_refused(job.id, 1, reason) is Outcome.IGNORED


async def test_jobs_that_do_not_ask_get_the_default_executor(store, wakes, metrics, clip):
    lambda_default = job_service(store, wakes, metrics, executors=ExecutorPolicy.of(SFN, [], 5.0))
    with pytest.raises(InvalidRequest, match="lasts 10 s"):
        await lambda_default.create(request())
