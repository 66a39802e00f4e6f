"""Read-only access to the gateway's ``jobs`` table (the notifier never writes it)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpr_notifier.application.ports import WebhookTarget
from mpr_shared.db.models import Job


class SqlWebhookTargets:
    """WebhookTargets over SQLAlchemy: looks up ``jobs.webhook_url``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def webhook_target(self, job_id: UUID) -> WebhookTarget | None:
        query = select(Job.webhook_url, Job.status, Job.attempt).where(Job.id == job_id)
        async with self._sessions() as session:
            row = (await session.execute(query)).first()
        return WebhookTarget(row.webhook_url, row.status, row.attempt) if row else None

    async def ping(self) -> None:
        async with self._sessions() as session:
            await session.execute(text("SELECT 1"))
