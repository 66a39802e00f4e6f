"""Broker adapter: the notifier's two subscribers, one typed handler per event type.

Each handler is selected by the message's type (``of_type``: the x-mpr-type header, so a
retry republished to its queue reaches the same handler), parses (FastStream validates the
body into that contract), calls an application function and records metrics. A body that does
not fit its contract, or a type no handler takes, is dead-lettered with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from faststream.rabbit import RabbitRouter

from mpr_notifier.handlers import WebhookFailed, WebhookResult, broadcast, call_webhook
from mpr_notifier.runtime import Runtime
from mpr_shared.contracts import EVENTS_BY_ROUTING_KEY, JOB_EVENTS, Event
from mpr_shared.messaging import of_type, queue_router
from mpr_shared.topology import EVENTS, NOTIFIER_WEBHOOKS, live_queue

log = logging.getLogger(__name__)

LIVE_QUEUE_PREFIX = "mpr.notifier.live"


def build_router(runtime: Runtime) -> RabbitRouter:
    """Register the live-event and webhook subscribers (nothing connects here).

    Live queues are exclusive and short-lived, so they share one durable DLQ,
    mpr.notifier.live.dlq (declare_topology)."""
    live_q = live_queue("notifier", runtime.settings.instance_id, "#")
    live_router, webhooks_router = queue_router(live_q), queue_router(NOTIFIER_WEBHOOKS)
    live = live_router.subscriber(
        live_q,
        EVENTS,
        title=f"{LIVE_QUEUE_PREFIX}.<replica>",
        description="Every job.* and asset.* event, fanned out to this replica's SSE clients.",
    )
    webhooks = webhooks_router.subscriber(
        NOTIFIER_WEBHOOKS,
        EVENTS,
        title=NOTIFIER_WEBHOOKS.name,
        description="Job events; terminal ones (completed, failed, cancelled) call the job's "
        "webhook_url with a Standard Webhooks signature.",
    )

    async def on_live(event: Event) -> None:
        runtime.metrics.events_received.labels(event.ROUTING_KEY).inc()
        broadcast(event, runtime.hub)

    async def on_job_event(event: Event) -> None:
        if runtime.targets is None or runtime.sender is None:
            raise RuntimeError("webhook delivery is not started")
        try:
            result = await call_webhook(event, runtime.targets, runtime.sender)
        except WebhookFailed:
            runtime.metrics.webhooks_failed.inc()
            raise
        if result is WebhookResult.SENT:
            runtime.metrics.webhooks_sent.inc()

    # A type no handler takes (a newer publisher's) is dead-lettered with the reason.
    for event_type in EVENTS_BY_ROUTING_KEY.values():
        live(typed_handler("live", event_type, on_live), filter=of_type(event_type))
    for event_type in JOB_EVENTS:
        webhooks(typed_handler("webhook", event_type, on_job_event), filter=of_type(event_type))
    return RabbitRouter(routers=(live_router, webhooks_router))


def typed_handler(
    prefix: str, event_type: type[Event], action: Callable[[Event], Awaitable[None]]
) -> Callable[[Event], Awaitable[None]]:
    """A handler whose body annotation is ``event_type``, so FastStream validates the message
    into that contract and AsyncAPI documents its schema."""

    async def handler(event: Event) -> None:
        await action(event)

    handler.__annotations__ = {"event": event_type, "return": None}
    handler.__name__ = handler.__qualname__ = f"{prefix}_{event_type.__name__}"
    handler.__doc__ = f"{event_type.__name__} on routing key {event_type.ROUTING_KEY}."
    return handler
