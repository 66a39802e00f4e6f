"""What the notifier does with an event: fan it out to SSE clients, call a job's webhook."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from mpr_notifier.hub import EventHub, Notification
from mpr_shared.contracts import Event, JobCancelled, JobCompleted, JobFailed
from mpr_shared.messaging import PoisonMessage

log = logging.getLogger(__name__)

# The job status each terminal event leads to once the gateway has applied it.
WEBHOOK_STATUS: dict[type[Event], str] = {
    JobCompleted: "completed",
    JobFailed: "failed",
    JobCancelled: "cancelled",
}
WEBHOOK_EVENTS: tuple[type[Event], ...] = tuple(WEBHOOK_STATUS)
TERMINAL = frozenset(WEBHOOK_STATUS.values())


@dataclass(frozen=True)
class WebhookTarget:
    """A job's webhook URL and the state the gateway holds for it."""

    url: str | None
    status: str
    attempt: int


class WebhookTargets(Protocol):
    """Where a job wants its webhook (the gateway's ``jobs`` table, read-only)."""

    async def webhook_target(self, job_id: UUID) -> WebhookTarget | None:
        """The job's URL and state; None when the job is unknown."""
        ...


class JobStateLagging(Exception):
    """The gateway has not applied the event yet; retried (DeadLetterMiddleware backs off)."""


class WebhookSender(Protocol):
    """Delivers one signed webhook; raises WebhookFailed when it gives up."""

    async def send(self, url: str, message_id: str, body: str) -> None: ...


class WebhookFailed(PoisonMessage):
    """A webhook could not be delivered (refused target, rejected, or retries exhausted)."""


class WebhookResult(StrEnum):
    SENT = "sent"
    NOT_TERMINAL = "not-terminal"
    NO_URL = "no-url"
    STALE = "stale"


def event_payload(event: Event) -> dict[str, Any]:
    """The JSON clients receive: the contract's fields plus its type name."""
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


async def call_webhook(
    event: Event, targets: WebhookTargets, sender: WebhookSender
) -> WebhookResult:
    """POST a terminal job event to the job's webhook URL, if it has one."""
    job_id = getattr(event, "job_id", None)
    log.debug("webhook check: event %s %s job=%s", event.id, event.ROUTING_KEY, job_id)
    if not isinstance(event, WEBHOOK_EVENTS) or job_id is None:
        return WebhookResult.NOT_TERMINAL
    target = await targets.webhook_target(job_id)
    if target is None or not target.url:
        return WebhookResult.NO_URL
    # Only what the API also says: a client that GETs the job after its webhook sees that state.
    expected = WEBHOOK_STATUS[type(event)]
    if event.attempt < target.attempt or (target.status in TERMINAL and target.status != expected):
        log.info(
            "webhook skipped: event %s %s, job is %s", event.id, event.ROUTING_KEY, target.status
        )
        return WebhookResult.STALE
    if target.status != expected:
        raise JobStateLagging(f"job {job_id} is still {target.status} in the gateway")
    url = target.url
    # The message id is the webhook-id, so a redelivered event is one the receiver can dedupe.
    await sender.send(url, str(event.id), json.dumps(event_payload(event)))
    log.info("webhook sent: event %s %s job=%s", event.id, event.ROUTING_KEY, job_id)
    return WebhookResult.SENT
