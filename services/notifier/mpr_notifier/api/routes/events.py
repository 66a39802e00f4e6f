"""GET /api/events: the Server-Sent Events stream of job and asset events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from mpr_notifier.api.errors import ApiError
from mpr_notifier.application.filters import EventFilter, InvalidFilter
from mpr_notifier.application.hub import CloseReason, Subscription
from mpr_notifier.deps import ClientDep, HubDep, MetricsDep, SettingsDep
from mpr_notifier.metrics import Metrics

router = APIRouter(tags=["events"])
SHUTDOWN_GRACE_SECONDS = 2.0


@router.get(
    "/api/events",
    response_class=EventSourceResponse,
    summary="Stream job and asset events (text/event-stream)",
)
async def events(
    hub: HubDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    _client: ClientDep,
    job_id: Annotated[str | None, Query(description="Only events of this job.")] = None,
    asset_id: Annotated[str | None, Query(description="Only events of this asset.")] = None,
    types: Annotated[
        str | None,
        Query(description="Comma-separated routing keys, patterns or types: job.*,AssetProbed"),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event id (sent by EventSource).")
    ] = None,
) -> EventSourceResponse:
    """Each event: `event:` routing key, `id:` event id, `data:` the event JSON with `type`."""
    try:
        event_filter = EventFilter.parse(job_id=job_id, asset_id=asset_id, types=types)
    except InvalidFilter as exc:
        raise ApiError(400, "invalid_filter", str(exc)) from None
    # Subscribe before the response starts, so nothing published after this request is lost.
    subscription = hub.subscribe(event_filter, last_event_id)
    return EventSourceResponse(
        stream(subscription, metrics, last_event_id),
        ping=settings.sse_ping_seconds,
        send_timeout=settings.sse_send_timeout_seconds,
        # Proxies such as nginx buffer responses unless told not to.
        headers={"X-Accel-Buffering": "no"},
        background=BackgroundTask(hub.unsubscribe, subscription),
        **ended_on_shutdown(subscription),
    )


def ended_on_shutdown(subscription: Subscription) -> dict[str, Any]:
    """EventSourceResponse options that end the stream when the server stops."""
    shutdown = anyio.Event()

    async def end_on_shutdown() -> None:
        # sse-starlette sets `shutdown` when the server stops; ending the stream ourselves lets
        # the response finish properly instead of being cancelled mid-response.
        await shutdown.wait()
        subscription.close(CloseReason.SHUTDOWN)

    return {
        "shutdown_event": shutdown,
        "shutdown_grace_period": SHUTDOWN_GRACE_SECONDS,
        "data_sender_callable": end_on_shutdown,
    }


async def stream(
    subscription: Subscription, metrics: Metrics, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent]:
    """Replayed and live events, then a final notice if the client is dropped for lagging."""
    if subscription.gap:
        yield notice(
            "gap",
            last_event_id,
            "Last-Event-ID is no longer in this notifier's replay buffer; events may have "
            "been missed, so re-read current state from the gateway",
        )
    async for item in subscription:
        yield ServerSentEvent(data=json.dumps(item.data), event=item.event, id=item.id)
        metrics.events_delivered.inc()
    if subscription.closed is CloseReason.OVERFLOW:
        metrics.clients_dropped.inc()
        yield notice(
            "overflow",
            subscription.last_id or last_event_id,
            "client fell too far behind; reconnect with Last-Event-ID to resume",
        )


def notice(event: str, last_event_id: str | None, detail: str) -> ServerSentEvent:
    return ServerSentEvent(
        event=event, data=json.dumps({"last_event_id": last_event_id, "detail": detail})
    )
