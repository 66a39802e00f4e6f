"""Fan an event out to this replica's SSE clients."""

from __future__ import annotations

import logging
from typing import Any

from mpr_notifier.application.hub import EventHub, Notification
from mpr_shared.contracts import Event

log = logging.getLogger(__name__)


def event_payload(event: Event) -> dict[str, Any]:
    """The JSON SSE clients and webhook receivers get: the contract's fields plus its type."""
    return {**event.model_dump(mode="json"), "type": type(event).__name__}


def _id_of(event: Event, name: str) -> str | None:
    value = getattr(event, name, None)
    return str(value) if value is not None else None


def broadcast(event: Event, hub: EventHub) -> Notification | None:
    """Hand an event to every connected client; None when it is a redelivery."""
    job_id, asset_id = _id_of(event, "job_id"), _id_of(event, "asset_id")
    log.debug("event %s %s job=%s asset=%s", event.id, event.ROUTING_KEY, job_id, asset_id)
    return hub.publish(
        id=str(event.id),
        event=event.ROUTING_KEY,
        data=event_payload(event),
        job_id=job_id,
        asset_id=asset_id,
    )
