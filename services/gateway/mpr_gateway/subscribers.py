"""Broker entrypoints: the executors' job events and the catalog's CreateJob commands.

One typed handler per message type, selected by the message's type (``of_type``: the
x-mpr-type header, so a retry republished to the queue reaches the same handler). Each parses
(FastStream validates the body into its contract), calls the job service and lets errors
dead-letter. Each acks only after its transaction committed, and is idempotent (the state
machine is monotonic, CreateJob is deduplicated by its idempotency key). A type no handler
takes is dead-lettered with the reason.

The events of Lambda jobs arrive on the callback route and are republished to mpr.events
(JobService.apply_event(republish=True)), so they come back here too: they are left bound,
not filtered out, because applying an applied event is a no-op (``decide`` returns None:
the job is already at or past it) and costs one read; the outcome is counted as "ignored".
"""

from __future__ import annotations

import logging

from faststream.rabbit import RabbitQueue, RabbitRouter

from mpr_gateway.application.jobs import Outcome
from mpr_gateway.deps import Jobs, Workers
from mpr_gateway.domain.errors import InvalidRequest, NotFound
from mpr_gateway.domain.jobs import JobEvent
from mpr_shared.contracts import (
    CreateJob,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    WorkerHeartbeat,
    WorkerStopped,
)
from mpr_shared.messaging import PoisonMessage, of_type, queue_router
from mpr_shared.topology import (
    COMMANDS,
    EVENTS,
    GATEWAY_JOB_EVENT_KEYS,
    GATEWAY_JOB_EVENTS,
    GATEWAY_JOB_REQUESTS,
    GATEWAY_WORKERS,
)

log = logging.getLogger(__name__)


async def on_job_started(event: JobStarted, jobs: Jobs) -> None:
    await apply(event, jobs)


async def on_job_progress(event: JobProgress, jobs: Jobs) -> None:
    await apply(event, jobs)


async def on_job_completed(event: JobCompleted, jobs: Jobs) -> None:
    await apply(event, jobs)


async def on_job_failed(event: JobFailed, jobs: Jobs) -> None:
    await apply(event, jobs)


async def on_job_cancelled(event: JobCancelled, jobs: Jobs) -> None:
    await apply(event, jobs)


async def apply(event: JobEvent, jobs: Jobs) -> None:
    log.debug("job event %s %s for job %s", type(event).__name__, event.id, event.job_id)
    if await jobs.apply_event(event) is Outcome.UNKNOWN_JOB:
        raise PoisonMessage(f"no job {event.job_id} in this gateway's database")


async def on_create_job(command: CreateJob, jobs: Jobs) -> None:
    log.info("CreateJob %s for %s (%s)", command.id, command.source_key, command.requested_by)
    try:
        created = await jobs.create_from_command(command)
    except (InvalidRequest, NotFound) as exc:  # never becomes valid: dead-letter it
        raise PoisonMessage(exc.message) from exc
    replay = " (replay)" * created.replayed
    log.info("CreateJob %s → job %s%s", command.id, created.job.id, replay)


async def on_worker_heartbeat(beat: WorkerHeartbeat, workers: Workers) -> None:
    log.debug("heartbeat %s of %s (job %s)", beat.id, beat.worker, beat.current_job_id)
    await workers.heartbeat(beat)


async def on_worker_stopped(event: WorkerStopped, workers: Workers) -> None:
    log.info("transcoder %s stopped (%s)", event.worker, event.reason or "no reason given")
    await workers.stopped(event)


JOB_EVENT_HANDLERS = (
    (JobStarted, on_job_started),
    (JobProgress, on_job_progress),
    (JobCompleted, on_job_completed),
    (JobFailed, on_job_failed),
    (JobCancelled, on_job_cancelled),
)


def build_router() -> RabbitRouter:
    """The gateway's subscribers on their queues (nothing connects here)."""
    events, requests = queue_router(GATEWAY_JOB_EVENTS), queue_router(GATEWAY_JOB_REQUESTS)
    job_events = events.subscriber(
        # declare_topology declares the queue and binds its keys; FastStream binds nothing.
        RabbitQueue(GATEWAY_JOB_EVENTS.name, declare=False),
        EVENTS,
        title=GATEWAY_JOB_EVENTS.name,
        description="The executors' job events (routing keys "
        f"{', '.join(GATEWAY_JOB_EVENT_KEYS)}); they move the job's state forward, never back.",
    )
    for event_type, handler in JOB_EVENT_HANDLERS:
        job_events(handler, filter=of_type(event_type))
    requests.subscriber(
        GATEWAY_JOB_REQUESTS,
        COMMANDS,
        title=GATEWAY_JOB_REQUESTS.name,
        description="CreateJob from the catalog's auto-job rule; idempotent by idempotency_key.",
    )(on_create_job)
    return RabbitRouter(routers=(events, requests, _worker_router()))


def _worker_router() -> RabbitRouter:
    """Heartbeats into the workers table; the queue's TTL drops a backlog nobody needs."""
    router = queue_router(GATEWAY_WORKERS)
    worker_events = router.subscriber(
        RabbitQueue(GATEWAY_WORKERS.name, declare=False),
        EVENTS,
        title=GATEWAY_WORKERS.name,
        description="Transcoder replicas' WorkerHeartbeat and WorkerStopped (worker.*); "
        "they keep the workers table behind GET /api/workers.",
    )
    worker_events(on_worker_heartbeat, filter=of_type(WorkerHeartbeat))
    worker_events(on_worker_stopped, filter=of_type(WorkerStopped))
    return router
