"""Fakes for the notifier's ports."""

from __future__ import annotations

from uuid import UUID

from mpr_notifier.handlers import WebhookFailed


class FakeTargets:
    def __init__(self, urls: dict[UUID, str | None] | None = None) -> None:
        self.urls = urls or {}
        self.lookups: list[UUID] = []

    async def webhook_url(self, job_id: UUID) -> str | None:
        self.lookups.append(job_id)
        return self.urls.get(job_id)

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
