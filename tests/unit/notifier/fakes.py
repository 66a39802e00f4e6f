"""Fakes for the notifier's ports; test_fakes.py checks they match the Protocols."""

from __future__ import annotations

from uuid import UUID

from mpr_notifier.application.ports import WebhookTarget
from mpr_notifier.application.webhooks import WebhookFailed


class FakeJobs:
    """The gateway's jobs as the notifier reads them: each job's own URL, status and attempt."""

    def __init__(self) -> None:
        self.jobs: dict[UUID, WebhookTarget] = {}
        self.lookups: list[UUID] = []
        self.down: Exception | None = None  # set: every call raises it, as a dead database

    def add(
        self, job_id: UUID, url: str | None, status: str = "completed", attempt: int = 1
    ) -> None:
        self.jobs[job_id] = WebhookTarget(url, status, attempt)

    async def webhook_target(self, job_id: UUID) -> WebhookTarget | None:
        await self.ping()
        self.lookups.append(job_id)
        return self.jobs.get(job_id)

    async def ping(self) -> None:
        if self.down is not None:
            raise self.down


class FakeReceivers:
    """Webhook receivers by URL: each takes what is sent to it, unless told to refuse."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.refusals: dict[str, str] = {}  # url -> why the sender gives up on it

    def refuse(self, url: str, why: str) -> None:
        self.refusals[url] = why

    async def send(self, url: str, message_id: str, body: str) -> None:
        if url in self.refusals:
            raise WebhookFailed(f"webhook to {url} {self.refusals[url]}")
        self.sent.append((url, message_id, body))
