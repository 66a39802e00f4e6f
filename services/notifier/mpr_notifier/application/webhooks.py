"""Call a job's webhook when the job ends, once the gateway says the same."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum

from mpr_notifier.application.broadcast import event_payload
from mpr_notifier.application.ports import WebhookSender, WebhookTarget, WebhookTargets
from mpr_shared.contracts import Event, JobCancelled, JobCompleted, JobFailed
from mpr_shared.messaging import PoisonMessage

log = logging.getLogger(__name__)

TerminalEvent = JobCompleted | JobFailed | JobCancelled
# The job status each terminal event leads to once the gateway has applied it.
WEBHOOK_STATUS: dict[type[TerminalEvent], str] = {
    JobCompleted: "completed",
    JobFailed: "failed",
    JobCancelled: "cancelled",
}
TERMINAL = frozenset(WEBHOOK_STATUS.values())


class JobStateLagging(Exception):
    """The gateway has not applied the event yet: try again later (the broker retries it)."""


# A PoisonMessage, so the consumer dead-letters it at once with this reason.
class WebhookFailed(PoisonMessage):
    """A webhook could not be delivered (refused target, rejected, or retries exhausted)."""


class WebhookResult(StrEnum):
    SENT = "sent"
    NOT_TERMINAL = "not-terminal"
    NO_URL = "no-url"
    STALE = "stale"


@dataclass(frozen=True)
class Webhooks:
    """Delivers terminal job events to the URL each job was created with."""

    targets: WebhookTargets
    sender: WebhookSender

    async def deliver(self, event: Event) -> WebhookResult:
        """POST a terminal job event to its job's webhook URL, if it has one."""
        log.debug("webhook check: event %s %s", event.id, event.ROUTING_KEY)
        if not isinstance(event, JobCompleted | JobFailed | JobCancelled):
            return WebhookResult.NOT_TERMINAL
        target = await self.targets.webhook_target(event.job_id)
        if target is None or not target.url:
            return WebhookResult.NO_URL
        if _stale(event, target):
            log.info(
                "webhook skipped: event %s %s, job is %s",
                event.id,
                event.ROUTING_KEY,
                target.status,
            )
            return WebhookResult.STALE
        if target.status != WEBHOOK_STATUS[type(event)]:
            raise JobStateLagging(f"job {event.job_id} is still {target.status} in the gateway")
        # The message id is the webhook-id, so a redelivered event is one the receiver can dedupe.
        await self.sender.send(target.url, str(event.id), json.dumps(event_payload(event)))
        log.info("webhook sent: event %s %s job=%s", event.id, event.ROUTING_KEY, event.job_id)
        return WebhookResult.SENT


def _stale(event: TerminalEvent, target: WebhookTarget) -> bool:
    """The job has moved on (a newer attempt, another end): the webhook would contradict the
    state a client reads from the API afterwards."""
    ended_otherwise = target.status in TERMINAL and target.status != WEBHOOK_STATUS[type(event)]
    return event.attempt < target.attempt or ended_otherwise
