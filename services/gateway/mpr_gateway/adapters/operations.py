"""SQL adapters of the operator's views: the ``workers`` table and aggregates over ``jobs``.

Writes run in their own short transaction (``SqlDatabase.begin``), reads outside one, as in
the job repository (adapters/db.py)."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from mpr_gateway.adapters.db import ASSETS, JOBS, SqlDatabase, _utc
from mpr_gateway.domain.workers import WindowFigures, WorkerRecord
from mpr_shared.contracts import TERMINAL_STATUSES, JobStatus
from mpr_shared.db.models import Base, Worker

WORKERS = Base.metadata.tables[Worker.__tablename__]
WORKER_FIELDS = tuple(c.name for c in WORKERS.columns)
TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)
ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class SqlWorkers:
    """WorkerRegistry on the ``workers`` table."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def record(self, worker: WorkerRecord) -> None:
        row = {name: getattr(worker, name) for name in WORKER_FIELDS}
        insert = (sqlite.insert if self._db.sqlite is not None else postgresql.insert)(WORKERS)
        newer = {name: insert.excluded[name] for name in WORKER_FIELDS if name != "id"}
        upsert = insert.values(row).on_conflict_do_update(
            index_elements=[WORKERS.c.id],
            set_=newer,
            where=WORKERS.c.beat_at < insert.excluded.beat_at,  # a late heartbeat changes nothing
        )
        await self._write(upsert)

    async def forget(self, worker_id: str, beat_before: datetime) -> None:
        await self._write(
            delete(WORKERS).where(WORKERS.c.id == worker_id, WORKERS.c.beat_at <= beat_before)
        )

    async def expire(self, seen_before: datetime) -> int:
        return await self._write(delete(WORKERS).where(WORKERS.c.last_seen < seen_before))

    async def live(self, seen_since: datetime) -> list[WorkerRecord]:
        query = select(WORKERS).where(WORKERS.c.last_seen >= seen_since).order_by(WORKERS.c.id)
        return [_worker(r) for r in await self._db.read(query)]

    async def _write(self, statement: Any) -> int:
        writes = await self._db.begin()
        try:
            changed = await writes.execute(statement)
            await writes.commit([])
            return changed
        finally:
            await writes.close()


def _worker(row: Any) -> WorkerRecord:
    data = dict(row._mapping)
    for name in ("started_at", "beat_at", "last_seen"):
        data[name] = _utc(data[name])  # SQLite hands back naive UTC
    return WorkerRecord(**data)


class SqlJobFigures:
    """JobFigures: counts and sums over ``jobs`` (indexed by status and by finished_at)."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def active(self) -> dict[str, int]:
        query = (
            select(JOBS.c.status, func.count())
            .where(JOBS.c.status.in_(ACTIVE))
            .group_by(JOBS.c.status)
        )
        return {status: count for status, count in await self._db.read(query)}

    async def finished_since(self, since: datetime) -> WindowFigures:
        recent = JOBS.c.finished_at >= since
        counts_query = (
            select(JOBS.c.status, func.count())
            .where(recent, JOBS.c.status.in_(TERMINAL))
            .group_by(JOBS.c.status)
        )
        completed = (recent, JOBS.c.status == JobStatus.COMPLETED.value)
        bytes_query = (
            select(
                func.coalesce(func.sum(ASSETS.c.size_bytes), 0),
                func.coalesce(func.sum(JOBS.c.bytes_out), 0),
            )
            .select_from(JOBS.outerjoin(ASSETS, JOBS.c.asset_id == ASSETS.c.id))
            .where(*completed)
        )
        counts = {status: count for status, count in await self._db.read(counts_query)}
        [(bytes_in, bytes_out)] = await self._db.read(bytes_query)
        median = await self._median_speed(*completed)
        return WindowFigures(counts, median, int(bytes_in), int(bytes_out))

    async def _median_speed(self, *where: Any) -> float | None:
        known = (*where, JOBS.c.speed.is_not(None))
        if self._db.sqlite is not None:  # SQLite has no percentile: a day's speeds are few
            speeds = [s for (s,) in await self._db.read(select(JOBS.c.speed).where(*known))]
            return statistics.median(speeds) if speeds else None
        median = func.percentile_cont(0.5).within_group(JOBS.c.speed)
        [(value,)] = await self._db.read(select(median).where(*known))
        return None if value is None else float(value)
