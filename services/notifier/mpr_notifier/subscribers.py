"""Broker entrypoints: one typed subscriber per event type on each of the notifier's queues.

FastStream validates the body into the annotated contract (a body that does not fit is
dead-lettered with the reason) and the handler calls a use case. Each is selected by the
message's type (``of_type``: the ``x-mpr-type`` header), so a retry republished to its queue
reaches the same handler; a type no handler takes is dead-lettered, never acked in silence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import get_type_hints

from faststream.rabbit import RabbitRouter

from mpr_notifier.application.broadcast import broadcast
from mpr_notifier.application.hub import EventHub
from mpr_notifier.application.webhooks import (
    JobStateLagging,
    WebhookFailed,
    WebhookResult,
    Webhooks,
)
from mpr_notifier.deps import HubDep, MetricsDep, WebhooksDep
from mpr_notifier.metrics import Metrics
from mpr_shared.contracts import (
    AssetProbed,
    AssetRegistered,
    AssetRemoved,
    AssetUpdated,
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobQueued,
    JobStarted,
    WorkerHeartbeat,
    WorkerStopped,
)
from mpr_shared.messaging import of_type, queue_router
from mpr_shared.topology import EVENTS, NOTIFIER_WEBHOOKS, live_queue

# ---------------------------------------------------------------- live: this replica's SSE


def _fan_out(event: Event, hub: EventHub, metrics: Metrics) -> None:
    metrics.events_received.labels(event.ROUTING_KEY).inc()
    broadcast(event, hub)


async def live_job_queued(event: JobQueued, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_job_started(event: JobStarted, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_job_progress(event: JobProgress, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_job_completed(event: JobCompleted, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_job_failed(event: JobFailed, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_job_cancelled(event: JobCancelled, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_asset_registered(event: AssetRegistered, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_asset_probed(event: AssetProbed, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_asset_updated(event: AssetUpdated, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_asset_removed(event: AssetRemoved, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_worker_heartbeat(event: WorkerHeartbeat, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


async def live_worker_stopped(event: WorkerStopped, hub: HubDep, metrics: MetricsDep) -> None:
    _fan_out(event, hub, metrics)


# ---------------------------------------------------------------- webhooks (durable queue)


async def _deliver(event: Event, webhooks: Webhooks, metrics: Metrics) -> None:
    """Call the job's webhook; what cannot be done now is raised for a retry or a dead letter."""
    try:
        result = await webhooks.deliver(event)
    except JobStateLagging:
        metrics.webhooks_deferred.inc()
        raise
    except WebhookFailed:
        metrics.webhooks_failed.inc()
        raise
    if result is WebhookResult.SENT:
        metrics.webhooks_sent.inc()


async def webhook_job_completed(
    event: JobCompleted, webhooks: WebhooksDep, metrics: MetricsDep
) -> None:
    await _deliver(event, webhooks, metrics)


async def webhook_job_failed(event: JobFailed, webhooks: WebhooksDep, metrics: MetricsDep) -> None:
    await _deliver(event, webhooks, metrics)


async def webhook_job_cancelled(
    event: JobCancelled, webhooks: WebhooksDep, metrics: MetricsDep
) -> None:
    await _deliver(event, webhooks, metrics)


async def webhook_job_queued(event: JobQueued) -> None:
    """The queue binds job.*; a job that has not ended has no webhook to call."""


async def webhook_job_started(event: JobStarted) -> None:
    """The queue binds job.*; a job that has not ended has no webhook to call."""


async def webhook_job_progress(event: JobProgress) -> None:
    """The queue binds job.*; a job that has not ended has no webhook to call."""


Handler = Callable[..., Awaitable[None]]
LIVE: tuple[Handler, ...] = (
    live_job_queued,
    live_job_started,
    live_job_progress,
    live_job_completed,
    live_job_failed,
    live_job_cancelled,
    live_asset_registered,
    live_asset_probed,
    live_asset_updated,
    live_asset_removed,
    live_worker_heartbeat,
    live_worker_stopped,
)
WEBHOOKS: tuple[Handler, ...] = (
    webhook_job_queued,
    webhook_job_started,
    webhook_job_progress,
    webhook_job_completed,
    webhook_job_failed,
    webhook_job_cancelled,
)


def message_type(handler: Handler) -> type[Event]:
    """The contract a handler's ``event`` parameter is annotated with."""
    event_type: type[Event] = get_type_hints(handler)["event"]
    return event_type


def router(instance_id: str) -> RabbitRouter:
    """Both queues' subscribers, the live queue named for this replica (nothing connects)."""
    live_q = live_queue("notifier", instance_id, "#")
    live, webhooks = queue_router(live_q), queue_router(NOTIFIER_WEBHOOKS)
    on_live = live.subscriber(
        live_q,
        EVENTS,
        title=live_q.name,
        description="Every job.*, worker.* and asset.* event, fanned out to this replica's SSE "
        "clients. Its dead letters go to mpr.notifier.live.dlq.",
    )
    on_webhook = webhooks.subscriber(
        NOTIFIER_WEBHOOKS,
        EVENTS,
        title=NOTIFIER_WEBHOOKS.name,
        description="Job events; terminal ones (completed, failed, cancelled) call the job's "
        "webhook_url with a Standard Webhooks signature.",
    )
    for handler in LIVE:
        on_live(handler, filter=of_type(message_type(handler)))
    for handler in WEBHOOKS:
        on_webhook(handler, filter=of_type(message_type(handler)))
    return RabbitRouter(routers=(live, webhooks))
