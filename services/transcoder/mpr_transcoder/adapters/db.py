"""The JobStateReader port on the gateway's ``jobs`` table: read-only, one row by id."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from mpr_shared.contracts import JobStatus
from mpr_shared.db.models import Job
from mpr_transcoder.errors import TransientError
from mpr_transcoder.ports import JobState


class SqlJobStateReader:
    """Reads ``jobs.status`` and ``jobs.attempt``; never writes (the gateway owns the table)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, job_id: UUID) -> JobState | None:
        query = select(Job.status, Job.attempt).where(Job.id == job_id)
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except (SQLAlchemyError, OSError) as exc:
            raise TransientError(f"jobs table not readable: {exc}") from exc
        if row is None:
            return None
        return JobState(status=JobStatus(row.status), attempt=int(row.attempt))
