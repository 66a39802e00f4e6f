"""The JobRows port on the gateway's ``jobs`` table: read-only, one row by id."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from mpr_shared.contracts import JobStatus
from mpr_shared.db.models import Job
from mpr_transcoder.application.ports import JobRow
from mpr_transcoder.domain.errors import TransientError


class SqlJobRows:
    """Reads ``jobs.status`` and ``jobs.attempt``; never writes (the gateway owns the table)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, job_id: UUID) -> JobRow | None:
        query = select(Job.status, Job.attempt).where(Job.id == job_id)
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except (SQLAlchemyError, OSError) as exc:
            raise TransientError(f"jobs table not readable: {exc}") from exc
        if row is None:
            return None
        return JobRow(status=JobStatus(row.status), attempt=int(row.attempt))

    async def ping(self) -> None:
        """Readiness: the database answers."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
