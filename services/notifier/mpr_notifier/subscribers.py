"""Broker adapter: the notifier's two subscribers, one typed handler per event type.

Each handler parses (FastStream validates the body into the contract by routing key), calls
an application function and records metrics. A body that does not fit its contract raises, and
DeadLetterMiddleware moves it to a dead-letter queue with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.rabbit import RabbitBroker, RabbitRouter
from faststream.rabbit.annotations import RabbitMessage

from mpr_notifier.handlers import WebhookFailed, WebhookResult, broadcast, call_webhook
from mpr_notifier.runtime import Runtime
from mpr_shared.contracts import EVENTS_BY_ROUTING_KEY, JOB_EVENTS, Event
from mpr_shared.topology import (
    DEAD_LETTER,
    EVENTS,
    NOTIFIER_WEBHOOKS,
    live_dead_letter_queue,
    live_queue,
)

log = logging.getLogger(__name__)

LIVE_QUEUE_PREFIX = "mpr.notifier.live"
# Live queues are exclusive and short-lived, so they have no DLQ of their own: one durable
# queue collects what DeadLetterMiddleware republishes from any replica's live queue.
LIVE_DEAD_LETTERS = live_dead_letter_queue("notifier")


async def declare_live_dead_letters(broker: RabbitBroker) -> None:
    """Declare and bind the live queues' shared dead-letter queue (idempotent)."""
    dlx = await broker.declare_exchange(DEAD_LETTER)
    queue = await broker.declare_queue(LIVE_DEAD_LETTERS)
    await queue.bind(dlx, routing_key=LIVE_DEAD_LETTERS.routing_key)


def build_router(runtime: Runtime) -> RabbitRouter:
    """Register the live-event and webhook subscribers (nothing connects here)."""
    router = RabbitRouter()
    live = router.subscriber(
        live_queue("notifier", runtime.settings.instance_id, "#"),
        EVENTS,
        title=f"{LIVE_QUEUE_PREFIX}.<replica>",
        description="Every job.* and asset.* event, fanned out to this replica's SSE clients.",
    )
    webhooks = router.subscriber(
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

    for event_type in EVENTS_BY_ROUTING_KEY.values():
        live(typed_handler("live", event_type, on_live), filter=routed(event_type.ROUTING_KEY))
    live(ignore_unknown)
    for event_type in JOB_EVENTS:
        webhooks(
            typed_handler("webhook", event_type, on_job_event),
            filter=routed(event_type.ROUTING_KEY),
        )
    webhooks(ignore_unknown)
    return router


def routed(routing_key: str) -> Callable[[Any], Awaitable[bool]]:
    """A FastStream filter: the message was published with this routing key."""

    # Async on purpose: FastStream runs a sync filter in a thread pool, which costs a thread
    # hop per handler and lets later deliveries overtake earlier ones.
    async def matches(message: Any) -> bool:
        return message.raw_message.routing_key == routing_key

    return matches


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


async def ignore_unknown(message: RabbitMessage) -> None:
    """An event type this version does not know (a newer publisher): tolerated, not an error."""
    log.debug(
        "ignoring message %s with unknown routing key %s",
        message.message_id,
        message.raw_message.routing_key,
    )
