"""One writer per table, enforced by PostgreSQL: each service acts as its own role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from mpr_shared.contracts import JobQueued, JobSpec
from mpr_shared.db import create_engine, engine_for, session_factory
from mpr_shared.db.models import (
    TABLE_WRITERS,
    Asset,
    CatalogOutbox,
    GatewayOutbox,
    Job,
    Upload,
    Worker,
)
from mpr_shared.outbox import OutboxRelay, outbox_row
from mpr_shared.settings import CommonSettings

ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
NOW = datetime.now(UTC)
ASSET_ID, JOB_ID = uuid.uuid4(), uuid.uuid4()
Statement = Callable[[], object]

ASSET = {
    "id": ASSET_ID,
    "bucket": "in",
    "key": "a.mp4",
    "media_type": "video",
    "size_bytes": 1,
    "etag": "e",
    "status": "active",
    "probe_status": "pending",
    "created_at": NOW,
    "updated_at": NOW,
}
JOB = {
    "id": JOB_ID,
    "asset_id": ASSET_ID,
    "source_bucket": "in",
    "source_key": "a.mp4",
    "kind": "audio",
    "spec": {"kind": "audio"},
    "output_bucket": "out",
    "output_key": "a.m4a",
    "priority": 0,
    "status": "queued",
    "attempt": 1,
    "progress": 0.0,
    "created_at": NOW,
    "updated_at": NOW,
}
WORKER = {
    "id": f"w-{uuid.uuid4().hex[:8]}",
    "host": "h",
    "pid": 1,
    "version": "0.1.0",
    "started_at": NOW,
    "interval_seconds": 10.0,
    "beat_at": NOW,
    "last_seen": NOW,
}

UPLOAD = {
    "id": uuid.uuid4(),
    "bucket": "in",
    "key": "up.mp4",
    "size_bytes": 1,
    "mode": "single",
    "status": "pending",
    "created_at": NOW,
    "expires_at": NOW,
}


def event_row() -> dict:
    return outbox_row(JobQueued(job_id=JOB_ID, source_key="a.mp4", spec=JobSpec(kind="audio")))


# What each service writes, and a write into every table it does not own.
WRITES = {
    "assets": lambda: insert(Asset).values(ASSET),
    "catalog_outbox": lambda: insert(CatalogOutbox).values(event_row()),
    "jobs": lambda: insert(Job).values(JOB),
    "gateway_outbox": lambda: insert(GatewayOutbox).values(event_row()),
    "workers": lambda: insert(Worker).values(WORKER),
    "uploads": lambda: insert(Upload).values(UPLOAD),
}
READS = {
    "mpr_gateway": {"assets", "jobs", "gateway_outbox", "workers", "uploads"},
    "mpr_catalog": {"assets", "catalog_outbox"},
    "mpr_transcoder": {"jobs"},
    "mpr_notifier": {"jobs"},
}


@pytest.fixture
async def as_role(database_url: str) -> AsyncIterator[Callable[[str], AsyncConnection]]:
    engines = []

    def connect(role: str):
        engine = create_engine(database_url, role=role)
        engines.append(engine)
        return engine.connect()

    yield connect
    for engine in engines:
        await engine.dispose()


async def refused(connection: AsyncConnection, statement) -> bool:
    try:
        await connection.execute(statement)
    except DBAPIError as exc:
        await connection.rollback()
        assert "permission denied" in str(exc.orig)
        return True
    await connection.commit()
    return False


@ON_POSTGRES
async def test_each_service_writes_its_own_tables_and_nothing_else(as_role):
    owned_in_order = ("assets", "catalog_outbox", "jobs", "gateway_outbox", "workers", "uploads")
    for table in owned_in_order:
        role = f"mpr_{TABLE_WRITERS[table]}"
        async with as_role(role) as connection:
            assert await connection.scalar(text("SELECT current_user")) == role
            assert not await refused(connection, WRITES[table]()), f"{role} cannot write {table}"
    for role in READS:
        owned = {t for t, writer in TABLE_WRITERS.items() if f"mpr_{writer}" == role}
        async with as_role(role) as connection:
            for table in set(WRITES) - owned:
                assert await refused(connection, WRITES[table]()), f"{role} wrote {table}"
            cancel = update(Job).where(Job.id == JOB_ID).values(status="cancelled")
            assert await refused(connection, cancel) is ("jobs" not in owned)


@ON_POSTGRES
async def test_each_service_reads_what_it_reads_and_nothing_else(as_role):
    for role, readable in READS.items():
        async with as_role(role) as connection:
            for table in TABLE_WRITERS:
                statement = text(f"SELECT count(*) FROM {table}")
                assert await refused(connection, statement) is (table not in readable), (
                    f"{role} reading {table}"
                )


@ON_POSTGRES
async def test_the_outbox_relay_marks_its_rows_as_its_service(database_url: str):
    settings = CommonSettings(DATABASE_URL=database_url, DATABASE_ROLE="mpr_gateway")
    engine = engine_for(settings)
    sessions = session_factory(engine)
    async with sessions() as session:
        await session.execute(insert(GatewayOutbox).values(event_row()))
        await session.commit()

    class Confirmed:
        async def publish(self, row) -> None:
            return None

    assert await OutboxRelay(Confirmed(), sessions, GatewayOutbox).flush() == 1
    async with sessions() as session:
        assert (await session.scalar(select(GatewayOutbox.published_at))) is not None
    await engine.dispose()


def test_sqlite_ignores_the_role(tmp_path):
    settings = CommonSettings(
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", DATABASE_ROLE="mpr_gateway"
    )
    assert engine_for(settings).dialect.name == "sqlite"
