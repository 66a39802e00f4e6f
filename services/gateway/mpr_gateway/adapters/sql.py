"""SQLAlchemy adapters: the unit of work, the job repository and the asset reader.

Core statements (not ORM objects) keep the hot paths (GET a job, POST a job) cheap; every
list query is a keyset query backed by an index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID

from sqlalchemy import Engine, and_, create_engine, event, func, insert, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from mpr_gateway.application.ports import AssetFilter, DuplicateIdempotencyKey, JobFilter
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.jobs import JobRecord, JobState, Transition
from mpr_shared.contracts import Message
from mpr_shared.db.models import Asset, GatewayOutbox, Job
from mpr_shared.outbox import outbox_row
from mpr_shared.settings import normalize_database_url
from mpr_shared.topology import COMMANDS, EVENTS

JOBS = Job.__table__
ASSETS = Asset.__table__
OUTBOX = GatewayOutbox.__table__
JOB_FIELDS = tuple(c.name for c in JOBS.columns)
ASSET_FIELDS = ("id", *(f for f in AssetRecord.__slots__ if f != "id"))
TIME_FIELDS = ("created_at", "updated_at", "started_at", "finished_at", "deleted_at")


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _record(cls: type, row: Any) -> Any:
    data = dict(row._mapping)
    for name in TIME_FIELDS:
        if name in data:
            data[name] = _utc(data[name])
    return cls(**data)


def _job(row: Any) -> JobRecord:
    return _record(JobRecord, row)


def _asset(row: Any) -> AssetRecord:
    return _record(AssetRecord, row)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Statements:
    """Runs reads on the SQLite reader when there is one, everything else on the unit of
    work's async connection (opened on first use, so a pure read never opens one)."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def read(self, query: Any) -> list[Any]:
        reader = self._uow.reader
        if reader is not None:
            with reader.connect() as conn:
                return list(conn.execute(query))
        return list(await (await self._uow.connection()).execute(query))

    async def write(self, statement: Any, params: Any = None) -> Any:
        return await (await self._uow.connection(writing=True)).execute(statement, params)


class SqlJobs:
    def __init__(self, db: _Statements) -> None:
        self._db = db
        self._pending: list[dict[str, Any]] = []

    async def get(self, job_id: UUID) -> JobRecord | None:
        rows = await self._db.read(select(JOBS).where(JOBS.c.id == job_id))
        return _job(rows[0]) if rows else None

    async def by_idempotency_key(self, key: str) -> JobRecord | None:
        rows = await self._db.read(select(JOBS).where(JOBS.c.idempotency_key == key))
        return _job(rows[0]) if rows else None

    def add(self, job: JobRecord) -> None:
        self._pending.append({name: getattr(job, name) for name in JOB_FIELDS})

    async def flush(self) -> None:
        if self._pending:
            await self._db.write(insert(JOBS), self._pending)
            self._pending.clear()

    async def transition(
        self, job_id: UUID, expected: JobState, transition: Transition, now: datetime
    ) -> bool:
        # Compare-and-set: the update only lands if nobody moved the job since we read it.
        query = (
            update(JOBS)
            .where(
                JOBS.c.id == job_id,
                JOBS.c.status == expected.status.value,
                JOBS.c.attempt == expected.attempt,
                JOBS.c.progress == expected.progress,
                JOBS.c.worker.is_(None)
                if expected.worker is None
                else JOBS.c.worker == expected.worker,
            )
            .values(**transition.columns(), updated_at=now)
        )
        result = await self._db.write(query)
        return result.rowcount == 1

    async def page(
        self, filters: JobFilter, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[JobRecord]:
        query = select(JOBS)
        if filters.status:
            query = query.where(JOBS.c.status == filters.status)
        if filters.kind:
            query = query.where(JOBS.c.kind == filters.kind)
        if filters.asset_id:
            query = query.where(JOBS.c.asset_id == filters.asset_id)
        if after:
            created, job_id = after
            query = query.where(
                or_(
                    JOBS.c.created_at < created,
                    and_(JOBS.c.created_at == created, JOBS.c.id < job_id),
                )
            )
        query = query.order_by(JOBS.c.created_at.desc(), JOBS.c.id.desc()).limit(limit)
        return [_job(r) for r in await self._db.read(query)]

    async def for_assets(self, asset_ids: Sequence[UUID], limit: int) -> list[JobRecord]:
        if not asset_ids:
            return []
        ranked = (
            select(
                JOBS,
                func.row_number()
                .over(
                    partition_by=JOBS.c.asset_id,
                    order_by=(JOBS.c.created_at.desc(), JOBS.c.id.desc()),
                )
                .label("rank"),
            )
            .where(JOBS.c.asset_id.in_(list(asset_ids)))
            .subquery()
        )
        query = (
            select(*(ranked.c[name] for name in JOB_FIELDS))
            .where(ranked.c.rank <= limit)
            .order_by(ranked.c.asset_id, ranked.c.created_at.desc(), ranked.c.id.desc())
        )
        return [_job(r) for r in await self._db.read(query)]


class SqlAssets:
    def __init__(self, db: _Statements) -> None:
        self._db = db

    def _select(self):
        return select(*(ASSETS.c[name] for name in ASSET_FIELDS))

    async def get(self, asset_id: UUID) -> AssetRecord | None:
        rows = await self._db.read(self._select().where(ASSETS.c.id == asset_id))
        return _asset(rows[0]) if rows else None

    async def by_key(self, bucket: str, key: str) -> AssetRecord | None:
        query = self._select().where(ASSETS.c.bucket == bucket, ASSETS.c.key == key)
        rows = await self._db.read(query)
        return _asset(rows[0]) if rows else None

    async def many(self, asset_ids: Sequence[UUID]) -> list[AssetRecord]:
        if not asset_ids:
            return []
        query = self._select().where(ASSETS.c.id.in_(list(asset_ids)))
        return [_asset(r) for r in await self._db.read(query)]

    async def page(
        self, filters: AssetFilter, after: tuple[str, UUID] | None, limit: int
    ) -> list[AssetRecord]:
        query = self._select()
        if filters.media_type:
            query = query.where(ASSETS.c.media_type == filters.media_type)
        if filters.status:
            query = query.where(ASSETS.c.status == filters.status)
        if filters.probe_status:
            query = query.where(ASSETS.c.probe_status == filters.probe_status)
        if filters.prefix:
            query = query.where(ASSETS.c.key.like(_like_escape(filters.prefix) + "%", escape="\\"))
        if filters.q:
            query = query.where(ASSETS.c.key.like(f"%{_like_escape(filters.q)}%", escape="\\"))
        if after:
            key, asset_id = after
            query = query.where(
                or_(ASSETS.c.key > key, and_(ASSETS.c.key == key, ASSETS.c.id > asset_id))
            )
        query = query.order_by(ASSETS.c.key, ASSETS.c.id).limit(limit)
        return [_asset(r) for r in await self._db.read(query)]


class SqlOutbox:
    """Rows for ``gateway_outbox``, inserted in the unit of work's transaction."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def command(self, message: Message, priority: int | None = None) -> None:
        self._add(message, COMMANDS, priority)

    def event(self, message: Message) -> None:
        self._add(message, EVENTS, None)

    def _add(self, message: Message, exchange: Any, priority: int | None) -> None:
        row = outbox_row(GatewayOutbox, message, exchange, priority)
        self.rows.append(
            {
                "id": row.id,
                "exchange": row.exchange,
                "routing_key": row.routing_key,
                "message_type": row.message_type,
                "body": row.body,
                "priority": row.priority,
                "correlation_id": row.correlation_id,
                "created_at": datetime.now(UTC),
                "published_at": None,
                "attempts": 0,
            }
        )


class SqlUnitOfWork:
    """One transaction on one async connection; leaving without ``commit()`` rolls back.

    A Core connection, not an ORM session: the repositories only run Core statements, and a
    session's bookkeeping costs a measurable share of a GET /api/jobs/{id}. Reads go to the
    SQLite ``reader`` when given (see ``sqlite_reader``); nothing in the gateway relies on
    reading its own uncommitted writes, and every state change is a compare-and-set.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        reader: Engine | None = None,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self._engine = engine
        self.reader = reader
        self._write_lock = write_lock
        self._locked = False
        self._conn: AsyncConnection | None = None

    async def connection(self, *, writing: bool = False) -> AsyncConnection:
        if writing and self._write_lock is not None and not self._locked:
            # SQLite has one writer at a time and its busy handler backs off in sleeps of up
            # to 100 ms; queueing this process's writers on a lock instead keeps latency flat.
            await self._write_lock.acquire()
            self._locked = True
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def __aenter__(self) -> Self:
        statements = _Statements(self)
        self.jobs = SqlJobs(statements)
        self.assets = SqlAssets(statements)
        self.outbox = SqlOutbox()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            if self._conn is not None:
                await self._conn.close()  # rolls back anything not committed
                self._conn = None
        finally:
            if self._locked:
                self._locked = False
                self._write_lock.release()  # type: ignore[union-attr]

    async def commit(self) -> None:
        conn = await self.connection(writing=True)
        try:
            await self.jobs.flush()
            if self.outbox.rows:
                await conn.execute(insert(OUTBOX), self.outbox.rows)
                self.outbox.rows = []
            await conn.commit()
        except IntegrityError as exc:
            await conn.rollback()
            if "idempotency" in str(exc.orig).lower():
                raise DuplicateIdempotencyKey(str(exc.orig)) from exc
            raise


def sqlite_reader(database_url: str) -> Engine | None:
    """On SQLite, a synchronous engine for reads, run directly on the event loop.

    A primary-key read takes ~10 µs in sqlite3 but ~450 µs through aiosqlite, whose every
    call hops to a worker thread and back; in WAL mode readers never wait for writers, so a
    read cannot block the loop. Writes stay on the async engine (they may wait for the lock).
    https://www.sqlite.org/wal.html
    """
    url = make_url(normalize_database_url(database_url))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    engine = create_engine(url.set(drivername="sqlite"), connect_args={"timeout": 5})
    event.listen(engine, "connect", _read_only_pragmas)
    return engine


def _read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


async def ping(sessions: async_sessionmaker[AsyncSession]) -> None:
    """SELECT 1 — the readiness check."""
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
