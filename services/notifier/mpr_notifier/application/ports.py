"""What the use cases need from the outside world, as Protocols the adapters implement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True)
class WebhookTarget:
    """A job's webhook URL and the state the gateway holds for it."""

    url: str | None
    status: str
    attempt: int


class WebhookTargets(Protocol):
    """Where a job wants its webhook (the gateway's jobs, read-only)."""

    async def webhook_target(self, job_id: UUID) -> WebhookTarget | None:
        """The job's URL and state; None when the job is unknown."""
        ...

    async def ping(self) -> None:
        """Raise when the job store does not answer."""
        ...


class WebhookSender(Protocol):
    """Delivers one signed webhook; raises WebhookFailed when it gives up."""

    async def send(self, url: str, message_id: str, body: str) -> None: ...
