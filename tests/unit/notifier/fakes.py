"""Fakes for the notifier's ports."""

from __future__ import annotations

from uuid import UUID

from mpr_notifier.handlers import WebhookFailed, WebhookTarget


class FakeTargets:
    """Jobs with a URL are in ``status`` (the gateway applied the event) unless set otherwise."""

    def __init__(
        self, urls: dict[UUID, str | None] | None = None, status: str = "completed"
    ) -> None:
        self.urls = urls or {}
        self.status = status
        self.states: dict[UUID, tuple[str, int]] = {}
        self.lookups: list[UUID] = []

    async def webhook_target(self, job_id: UUID) -> WebhookTarget | None:
        self.lookups.append(job_id)
        if job_id not in self.urls:
            return None
        status, attempt = self.states.get(job_id, (self.status, 1))
        return WebhookTarget(self.urls[job_id], status, attempt)

    async def ping(self) -> None:
        return None


class FakeSender:
    def __init__(self, fail: str | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail

    async def send(self, url: str, message_id: str, body: str) -> None:
        if self.fail:
            raise WebhookFailed(self.fail)
        self.sent.append((url, message_id, body))
