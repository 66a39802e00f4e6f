"""The transcoder's broker entrypoints: one typed subscriber per message type, each selected by
the message's type (``of_type``), and the publishers documented for AsyncAPI.

A subscriber parses (FastStream validates the contract), calls the worker and maps the
outcome to metrics; what it raises is retried or dead-lettered by ``queue_router``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from faststream.rabbit import RabbitRouter
from faststream.rabbit.annotations import RabbitMessage

from mpr_shared.contracts import (
    CancelJob,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    ProcessMedia,
    WorkerHeartbeat,
    WorkerStopped,
)
from mpr_shared.messaging import of_type, queue_router
from mpr_shared.topology import COMMANDS, DEAD_LETTER, EVENTS, TRANSCODER_JOBS, live_queue
from mpr_transcoder.adapters.broker import RabbitDelivery
from mpr_transcoder.deps import ReplicaMetrics, Worker

log = logging.getLogger(__name__)
SERVICE = "transcoder"


class Consumer(Protocol):
    """A started subscriber that can stop taking deliveries (basic.cancel)."""

    async def stop(self) -> None: ...


async def on_process_media(
    job: ProcessMedia, message: RabbitMessage, worker: Worker, metrics: ReplicaMetrics
) -> None:
    """Run one media job (prefetch 1 per replica); acked when its result is confirmed."""
    started = time.monotonic()
    metrics.running.inc()
    try:
        outcome = await worker.handle(job, RabbitDelivery(message))
    except asyncio.CancelledError:
        # aio-pika cancels in-flight handlers when their channel or connection closes:
        # the delivery went back to the queue and FFmpeg was killed on the way out.
        metrics.delivery_lost()
        raise
    finally:
        metrics.running.dec()
    metrics.delivery_handled(outcome, time.monotonic() - started)


async def on_cancel(command: CancelJob, worker: Worker) -> None:
    """Every replica hears every cancel: skip the job if queued, kill it if running here."""
    log.info("cancel %s for job %s", command.id, command.job_id)
    worker.cancel(command)


def build_router(instance: str) -> tuple[RabbitRouter, Consumer]:
    """The subscribers of replica ``instance`` and its documented publishers; also returns
    the ProcessMedia consumer, which a shutdown stops first."""
    jobs = queue_router(TRANSCODER_JOBS)
    job_consumer = jobs.subscriber(TRANSCODER_JOBS, COMMANDS, title="transcoder:ProcessMedia")
    job_consumer(on_process_media, filter=of_type(ProcessMedia))
    cancel_queue = live_queue(SERVICE, instance, CancelJob.ROUTING_KEY)
    cancels = queue_router(cancel_queue)
    cancels.subscriber(cancel_queue, COMMANDS, title="transcoder:CancelJob")(
        on_cancel, filter=of_type(CancelJob)
    )
    router = RabbitRouter(routers=(jobs, cancels))
    _document_publishers(router)
    return router, job_consumer


def _document_publishers(router: RabbitRouter) -> None:
    """Every message the transcoder sends, for AsyncAPI (``make docs``)."""
    events = (JobStarted, JobProgress, JobCompleted, JobFailed, JobCancelled)
    for event in (*events, WorkerHeartbeat, WorkerStopped):
        router.publisher(
            exchange=EVENTS,
            routing_key=event.ROUTING_KEY,
            schema=event,
            title=f"transcoder:{event.__name__}",
            description=event.__doc__,
        )
    router.publisher(
        exchange=COMMANDS,
        routing_key=ProcessMedia.ROUTING_KEY,
        schema=ProcessMedia,
        title="transcoder:ProcessMedia:retry",
        description="A job republished with its x-mpr-deliveries header: raised for a retry, "
        "the same for a hand-back (a replica shutting down).",
    )
    router.publisher(
        exchange=DEAD_LETTER,
        routing_key=TRANSCODER_JOBS.name,
        schema=ProcessMedia,
        title="transcoder:ProcessMedia:dead-letter",
        description="A job that failed MAX_DELIVERIES times, with the reason in x-mpr-error.",
    )
