"""Broker entrypoints: the transcoder's job events and the catalog's CreateJob commands.

Thin adapters: parse the message, call the job service, let errors dead-letter. Each handler
acks only after its transaction committed, and is idempotent (the state machine is monotonic,
CreateJob is deduplicated by its idempotency key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faststream.rabbit import RabbitQueue, RabbitRouter
from faststream.rabbit.annotations import RabbitMessage

from mpr_gateway.application.jobs import JobService, Outcome
from mpr_gateway.domain.errors import GatewayError
from mpr_shared.contracts import JOB_EVENTS, CreateJob, JobQueued
from mpr_shared.messaging import PoisonMessage, delivered_type, queue_router, type_of
from mpr_shared.topology import (
    COMMANDS,
    EVENTS,
    GATEWAY_JOB_EVENT_KEYS,
    GATEWAY_JOB_EVENTS,
    GATEWAY_JOB_REQUESTS,
)

log = logging.getLogger(__name__)

# declare_topology declares this queue and binds GATEWAY_JOB_EVENT_KEYS; declare=False keeps
# FastStream from binding a key of its own. "job.*" is only the pattern FastStream's in-memory
# test broker routes by and AsyncAPI shows.
JOB_EVENTS_QUEUE = RabbitQueue(GATEWAY_JOB_EVENTS.name, declare=False, routing_key="job.*")


def make_router(jobs: Callable[[], JobService]) -> RabbitRouter:
    """The gateway's subscribers; ``jobs`` returns the service built in the app's lifespan."""
    events, requests = queue_router(GATEWAY_JOB_EVENTS), queue_router(GATEWAY_JOB_REQUESTS)

    @events.subscriber(
        JOB_EVENTS_QUEUE,
        EVENTS,
        title="gateway.job-events",
        description="JobStarted/JobProgress/JobCompleted/JobFailed/JobCancelled from the "
        f"transcoder (routing keys {', '.join(GATEWAY_JOB_EVENT_KEYS)}); they move the job's "
        "state forward, never back.",
    )
    async def on_job_event(body: dict[str, Any], message: RabbitMessage) -> None:
        event_type = _event_type(message)
        if event_type is JobQueued:
            return  # not bound, but a binding left by an older version may still route it
        event = event_type.model_validate(body)
        log.debug("job event %s %s for job %s", event_type.__name__, event.id, event.job_id)  # type: ignore[attr-defined]
        if await jobs().apply_event(event) is Outcome.UNKNOWN_JOB:
            raise PoisonMessage(f"no job {event.job_id} in this gateway's database")  # type: ignore[attr-defined]

    @requests.subscriber(
        GATEWAY_JOB_REQUESTS,
        COMMANDS,
        title="gateway.job-requests",
        description="CreateJob from the catalog's auto-job rule; idempotent by idempotency_key.",
    )
    async def on_create_job(command: CreateJob) -> None:
        log.info("CreateJob %s for %s (%s)", command.id, command.source_key, command.requested_by)
        try:
            created = await jobs().create_from_command(command)
        except GatewayError as exc:  # an invalid request never becomes valid: dead-letter it
            raise PoisonMessage(exc.message) from exc
        log.info(
            "CreateJob %s → job %s%s", command.id, created.job.id, " (replay)" * created.replayed
        )

    return RabbitRouter(routers=(events, requests))


def _event_type(message: RabbitMessage) -> type:
    """The event class, from the x-mpr-type header or else the routing key."""
    event_type = type_of(message, JOB_EVENTS)
    if event_type is None:
        delivered = delivered_type(message.headers, message.raw_message.routing_key)
        raise PoisonMessage(f"not a job event: {delivered!r}")
    return event_type
