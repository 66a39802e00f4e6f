"""SQLAlchemy adapters: the unit of work, the job repository and the asset reader.

Core statements (not ORM objects) keep the hot paths (GET a job, POST a job) cheap; every
list query is a keyset query backed by an index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol, Self, TypeVar
from uuid import UUID

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine
from sqlalchemy.pool import NullPool

from mpr_gateway.application.ports import AssetFilter, DuplicateIdempotencyKey, JobFilter
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.executors import Executor
from mpr_gateway.domain.jobs import JobRecord, JobState, Transition
from mpr_gateway.domain.uploads import UploadRecord, UploadStatus
from mpr_shared.contracts import JobSpec, JobStatus, Message
from mpr_shared.db import create_engine as create_async_engine
from mpr_shared.db import role_connect_args
from mpr_shared.db.models import Asset, Base, GatewayOutbox, Job, Upload
from mpr_shared.outbox import outbox_row
from mpr_shared.settings import normalize_database_url

JOBS = Base.metadata.tables[Job.__tablename__]
ASSETS = Base.metadata.tables[Asset.__tablename__]
OUTBOX = Base.metadata.tables[GatewayOutbox.__tablename__]
UPLOADS = Base.metadata.tables[Upload.__tablename__]
JOB_FIELDS = tuple(c.name for c in JOBS.columns)
ASSET_FIELDS = ("id", *(f for f in AssetRecord.__slots__ if f != "id"))
TIME_FIELDS = (
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "deleted_at",
    "expires_at",
)
T = TypeVar("T")

# The per-request lookups, built once: a statement built per call costs more to build and
# to derive its compiled-cache key (~50 µs) than SQLite takes to run it.
JOB_BY_ID = select(JOBS).where(JOBS.c.id == bindparam("id"))
JOB_BY_IDEMPOTENCY_KEY = select(JOBS).where(JOBS.c.idempotency_key == bindparam("key"))
JOB_QUEUED = select(JOBS.c.id).where(
    JOBS.c.id == bindparam("id"),
    JOBS.c.attempt == bindparam("attempt"),
    JOBS.c.status == JobStatus.QUEUED.value,
)
ASSET_COLUMNS = select(*(ASSETS.c[name] for name in ASSET_FIELDS))
ASSET_BY_ID = ASSET_COLUMNS.where(ASSETS.c.id == bindparam("id"))
ASSET_BY_KEY = ASSET_COLUMNS.where(
    ASSETS.c.bucket == bindparam("bucket"), ASSETS.c.key == bindparam("key")
)
SELECT_ONE = select(text("1"))
INSERT_JOBS = insert(JOBS)
INSERT_OUTBOX = insert(OUTBOX)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _columns(row: Row[Any]) -> dict[str, Any]:
    data = dict(row._mapping)
    for name in TIME_FIELDS:
        if name in data:
            data[name] = _utc(data[name])
    return data


def _job(row: Row[Any]) -> JobRecord:
    """A ``jobs`` row as a JobRecord: its spec read back as a JobSpec (kind and preset with it)."""
    data = _columns(row)
    del data["kind"], data["preset"]
    data["spec"] = JobSpec.model_validate(data["spec"])
    return JobRecord(**data)


def _job_row(job: JobRecord) -> dict[str, Any]:
    """The ``jobs`` columns of a new job; kind and preset are stored for filters and lists."""
    row = {name: getattr(job, name) for name in JOB_FIELDS}
    row["kind"], row["spec"] = job.kind.value, job.spec.model_dump(mode="json", exclude_none=True)
    return row


def _asset(row: Row[Any]) -> AssetRecord:
    return AssetRecord(**_columns(row))


def _where_equal(query: Select[Any], equals: dict[ColumnElement[Any], Any]) -> Select[Any]:
    """``query`` narrowed to rows whose column equals its value, for every value given."""
    for column, value in equals.items():
        if value is not None:
            query = query.where(column == value)
    return query


def _equal(column: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    """``column = value``, where None means IS NULL (as SQL's = never matches NULL)."""
    return column.is_(None) if value is None else column == value


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Statements:
    """Reads outside the unit of work's transaction (see ``SqlDatabase``); writes inside it,
    which is opened on first use, so a pure read never opens one."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def read(self, query: Any, params: dict[str, Any] | None = None) -> list[Any]:
        return await self._uow.db.read(query, params)

    async def write(self, statement: Any, params: Any = None) -> int:
        """Run ``statement`` in the transaction; returns the number of rows it changed."""
        return await (await self._uow.writes()).execute(statement, params)


class SqlJobs:
    def __init__(self, db: _Statements) -> None:
        self._db = db
        self._pending: list[dict[str, Any]] = []

    async def get(self, job_id: UUID) -> JobRecord | None:
        rows = await self._db.read(JOB_BY_ID, {"id": job_id})
        return _job(rows[0]) if rows else None

    async def by_idempotency_key(self, key: str) -> JobRecord | None:
        rows = await self._db.read(JOB_BY_IDEMPOTENCY_KEY, {"key": key})
        return _job(rows[0]) if rows else None

    def add(self, job: JobRecord) -> None:
        self._pending.append(_job_row(job))

    def take_pending(self) -> list[dict[str, Any]]:
        """New jobs' rows, inserted by the unit of work's commit."""
        pending, self._pending = self._pending, []
        return pending

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
                _equal(JOBS.c.worker, expected.worker),
                _equal(JOBS.c.out_time_seconds, expected.out_time_seconds),
            )
            .values(**transition.columns(), updated_at=now)
        )
        return await self._db.write(query) == 1

    async def page(
        self, filters: JobFilter, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[JobRecord]:
        query = _where_equal(
            select(JOBS),
            {
                JOBS.c.status: filters.status,
                JOBS.c.kind: filters.kind,
                JOBS.c.asset_id: filters.asset_id,
            },
        )
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

    async def get(self, asset_id: UUID) -> AssetRecord | None:
        rows = await self._db.read(ASSET_BY_ID, {"id": asset_id})
        return _asset(rows[0]) if rows else None

    async def by_key(self, bucket: str, key: str) -> AssetRecord | None:
        rows = await self._db.read(ASSET_BY_KEY, {"bucket": bucket, "key": key})
        return _asset(rows[0]) if rows else None

    async def many(self, asset_ids: Sequence[UUID]) -> list[AssetRecord]:
        if not asset_ids:
            return []
        query = ASSET_COLUMNS.where(ASSETS.c.id.in_(list(asset_ids)))
        return [_asset(r) for r in await self._db.read(query)]

    async def page(
        self, filters: AssetFilter, after: tuple[str, UUID] | None, limit: int
    ) -> list[AssetRecord]:
        query = _where_equal(
            ASSET_COLUMNS,
            {
                ASSETS.c.media_type: filters.media_type,
                ASSETS.c.status: filters.status,
                ASSETS.c.probe_status: filters.probe_status,
            },
        )
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


class SqlUploads:
    def __init__(self, db: _Statements) -> None:
        self._db = db

    async def get(self, upload_id: UUID) -> UploadRecord | None:
        rows = await self._db.read(select(UPLOADS).where(UPLOADS.c.id == upload_id))
        return UploadRecord(**_columns(rows[0])) if rows else None

    async def add(self, upload: UploadRecord) -> None:
        row = {c.name: getattr(upload, c.name) for c in UPLOADS.columns}
        await self._db.write(insert(UPLOADS).values(row))

    async def finish(self, upload_id: UUID, status: UploadStatus, now: datetime) -> bool:
        query = (
            update(UPLOADS)
            .where(UPLOADS.c.id == upload_id, UPLOADS.c.status == UploadStatus.PENDING.value)
            .values(status=status.value, finished_at=now)
        )
        return await self._db.write(query) == 1

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        query = (
            select(UPLOADS)
            .where(UPLOADS.c.status == UploadStatus.PENDING.value, UPLOADS.c.expires_at < now)
            .order_by(UPLOADS.c.created_at)
            .limit(limit)
        )
        return [UploadRecord(**_columns(r)) for r in await self._db.read(query)]


class SqlOutbox:
    """Rows for ``gateway_outbox`` (``outbox_row``), inserted by the unit of work's commit."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, *messages: Message, via: Executor = Executor.RABBITMQ) -> None:
        self.rows.extend({**outbox_row(m), "target": via.value} for m in messages)


class SqlUnitOfWork:
    """One transaction; leaving without ``commit()`` rolls back.

    Core statements, not an ORM session: a session's bookkeeping costs a measurable share of
    a GET /api/jobs/{id}. Reads run outside the transaction (see ``SqlDatabase``): nothing in
    the gateway relies on reading its own uncommitted writes, and every state change is a
    compare-and-set.
    """

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        self._writes: _Writes | None = None

    async def writes(self) -> _Writes:
        if self._writes is None:
            self._writes = await self.db.begin()
        return self._writes

    async def __aenter__(self) -> Self:
        statements = _Statements(self)
        self.jobs = SqlJobs(statements)
        self.assets = SqlAssets(statements)
        self.uploads = SqlUploads(statements)
        self.outbox = SqlOutbox()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._writes is not None:
            writes, self._writes = self._writes, None
            await writes.close()  # rolls back anything not committed

    async def commit(self) -> None:
        """Insert the new jobs and outbox rows and commit, all in one transaction."""
        batch = [(INSERT_JOBS, self.jobs.take_pending()), (INSERT_OUTBOX, self.outbox.rows)]
        self.outbox.rows = []
        try:
            await (await self.writes()).commit([(st, rows) for st, rows in batch if rows])
        except IntegrityError as exc:
            if "idempotency" in str(exc.orig).lower():
                raise DuplicateIdempotencyKey(str(exc.orig)) from exc
            raise


class _Writes(Protocol):
    """A unit of work's open transaction."""

    async def execute(self, statement: Any, params: Any = None) -> int: ...
    async def commit(self, batch: list[tuple[Any, Any]]) -> None: ...
    async def close(self) -> None: ...


class _AsyncWrites:
    """PostgreSQL: the transaction on one pooled async connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def execute(self, statement: Any, params: Any = None) -> int:
        return (await self._conn.execute(statement, params)).rowcount

    async def commit(self, batch: list[tuple[Any, Any]]) -> None:
        try:
            for statement, params in batch:
                await self._conn.execute(statement, params)
            await self._conn.commit()
        except BaseException:
            await self._conn.rollback()
            raise

    async def close(self) -> None:
        await self._conn.close()


class _ThreadWrites:
    """SQLite: the transaction on the process's writer thread (see ``SqliteWriter``)."""

    def __init__(self, writer: SqliteWriter) -> None:
        self._writer = writer
        self._pending = False  # statements run but neither committed nor rolled back

    async def execute(self, statement: Any, params: Any = None) -> int:
        self._pending = True
        return await self._writer.run(lambda conn: conn.execute(statement, params).rowcount)

    async def commit(self, batch: list[tuple[Any, Any]]) -> None:
        def work(conn: Connection) -> None:
            try:
                for statement, params in batch:
                    conn.execute(statement, params)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

        await self._writer.run(work)
        self._pending = False

    async def close(self) -> None:
        try:
            if self._pending:
                await self._writer.run(lambda conn: conn.rollback())
        finally:
            self._writer.lock.release()


class SqliteWriter:
    """This process's one SQLite write connection, on a thread of its own.

    aiosqlite hops to its thread and back for every cursor, execute, cursor close, commit and
    rollback: eight hops, each an event-loop wake-up, to insert a job with its two outbox
    rows. Here a commit's statements go over in one hop. ``lock`` lets one unit of work at a
    time use the connection; SQLite has one writer at a time anyway, and its busy handler
    backs off in sleeps of up to 100 ms, so queueing this process's writers here keeps
    latency flat. Other processes still wait on the busy timeout, on this thread.
    """

    def __init__(self, url: URL) -> None:
        self._engine = create_engine(url, connect_args={"timeout": 30}, poolclass=NullPool)
        event.listen(self._engine, "connect", _writer_pragmas)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._conn: Connection | None = None
        self.lock = asyncio.Lock()

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, work)

    def _call(self, work: Callable[[Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._engine.connect()
        return work(self._conn)

    async def close(self) -> None:
        def close(conn: Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self.run(close)
        self._thread.shutdown()
        self._engine.dispose()


class SqlDatabase:
    """The gateway's database connections, built once per process.

    SQLite: reads on a synchronous engine, run directly on the event loop (``sqlite_reader``);
    writes on ``SqliteWriter``. PostgreSQL: reads on autocommit connections, one round trip
    each instead of BEGIN, SELECT, ROLLBACK; writes in a transaction on a pooled connection.
    """

    def __init__(self, database_url: str, pool_size: int, role: str | None) -> None:
        self.sqlite = sqlite_reader(database_url)
        self.engine = (
            create_async_engine(database_url)
            if self.sqlite is not None
            else _postgres_engine(database_url, pool_size, role)
        )
        self.writer = SqliteWriter(self.sqlite.url) if self.sqlite is not None else None
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def write_lock(self) -> asyncio.Lock | None:
        """Held while this process writes to SQLite (None on PostgreSQL)."""
        return self.writer.lock if self.writer is not None else None

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self)

    async def job_awaits_start(self, job_id: UUID, attempt: int) -> bool:
        """True while the job's ``attempt`` is queued: an executor may still start it."""
        return bool(await self.read(JOB_QUEUED, {"id": job_id, "attempt": attempt}))

    async def ping(self) -> None:
        """SELECT 1: the readiness check."""
        await self.read(SELECT_ONE)

    async def read(self, query: Any, params: dict[str, Any] | None = None) -> list[Any]:
        if self.sqlite is not None:
            with self.sqlite.connect() as conn:
                return list(conn.execute(query, params))
        async with self._autocommit.connect() as conn:
            return list(await conn.execute(query, params))

    async def begin(self) -> _Writes:
        if self.writer is not None:
            await self.writer.lock.acquire()
            return _ThreadWrites(self.writer)
        return _AsyncWrites(await self.engine.connect())

    async def dispose(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        if self.sqlite is not None:
            self.sqlite.dispose()
        await self.engine.dispose()


def _postgres_engine(database_url: str, pool_size: int, role: str | None) -> AsyncEngine:
    """mpr_shared.db's engine (acting as ``role``) with a pool sized for the gateway's
    concurrency and no overflow.

    A pool opens overflow connections under load and closes each as it is returned: under
    steady load above the pool size that is a connect (a new PostgreSQL backend process) per
    request, which cost GET /api/jobs/{id} 15-50% of its throughput at 32 concurrent
    requests. Without overflow, requests beyond ``pool_size`` wait for a connection instead
    (no unit of work reads while it holds a write connection, so they cannot deadlock).
    No pre-ping: it costs a round trip per checkout; a dropped connection invalidates the
    pool. https://docs.sqlalchemy.org/en/20/core/pooling.html#sqlalchemy.pool.QueuePool
    """
    url = make_url(normalize_database_url(database_url))
    return sa_create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        connect_args=role_connect_args(role),
    )


def sqlite_reader(database_url: str) -> Engine | None:
    """On SQLite, a synchronous engine for reads, run directly on the event loop.

    A primary-key read takes ~10 µs in sqlite3 but ~450 µs through aiosqlite, whose every
    call hops to a worker thread and back; in WAL mode readers never wait for writers, so a
    read cannot block the loop. https://www.sqlite.org/wal.html
    """
    url = make_url(normalize_database_url(database_url))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    engine = create_engine(url.set(drivername="sqlite"), connect_args={"timeout": 5})
    event.listen(engine, "connect", _read_only_pragmas)
    return engine


def _writer_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # As mpr_shared.db sets them for its async engines.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
