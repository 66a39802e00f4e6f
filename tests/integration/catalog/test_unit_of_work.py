"""The SQL unit of work on SQLite and PostgreSQL: the contract the fake keeps too, the outbox
rows it writes, and the role it acts as."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpr_catalog.adapters.db import SqlUnitOfWorkFactory
from mpr_catalog.settings import CatalogSettings
from mpr_shared.contracts import CreateJob, JobSpec
from mpr_shared.db import engine_for, session_factory
from mpr_shared.db.models import CatalogOutbox
from tests.unit.catalog.uow_contract import CONTRACT, CommittedMessages, asset, registered


@pytest.fixture
async def catalog_sessions(settings: CatalogSettings) -> AsyncIterator[async_sessionmaker]:
    """Sessions as the catalog opens them (on PostgreSQL acting as mpr_catalog)."""
    engine = engine_for(settings)
    yield session_factory(engine)
    await engine.dispose()


def committed_messages(sessions: async_sessionmaker[AsyncSession]) -> CommittedMessages:
    async def committed() -> list[str]:
        async with sessions() as session:
            query = select(CatalogOutbox.message_type).order_by(CatalogOutbox.created_at)
            return list((await session.scalars(query)).all())

    return committed


@pytest.mark.parametrize("rule", CONTRACT, ids=lambda rule: rule.__name__)
async def test_sql_unit_of_work_keeps_the_contract(
    rule, catalog_sessions, sessions, settings: CatalogSettings
) -> None:
    uow = SqlUnitOfWorkFactory(catalog_sessions, on_commit=lambda: None)
    await rule(uow, settings.s3_bucket_in, committed_messages(sessions))


async def test_outbox_rows_come_from_the_shared_builder(
    catalog_sessions, sessions, settings: CatalogSettings
) -> None:
    wakes: list[None] = []
    uow = SqlUnitOfWorkFactory(catalog_sessions, on_commit=lambda: wakes.append(None))
    a = asset(settings.s3_bucket_in, "a.mp4")
    job = CreateJob(
        source_bucket=a.bucket,
        source_key=a.key,
        spec=JobSpec(kind="transcode", preset="h264-720p"),
        idempotency_key="k",
        requested_by="test",
        correlation_id=str(a.id),
    )
    async with uow() as writer:
        await writer.commit()  # nothing added: the relay is not woken
        writer.outbox.add(registered(a), job)
        await writer.commit()
    assert len(wakes) == 1
    async with sessions() as session:
        rows = {r.message_type: r for r in (await session.scalars(select(CatalogOutbox))).all()}
    event, command = rows["AssetRegistered"], rows["CreateJob"]
    assert (event.exchange, event.routing_key) == ("mpr.events", "asset.registered")
    assert (command.exchange, command.routing_key) == ("mpr.commands", "job.create")
    assert command.correlation_id == str(a.id) and command.published_at is None
    assert json.loads(command.body)["idempotency_key"] == "k"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no roles
async def test_the_catalog_acts_as_its_role_and_cannot_write_jobs(catalog_sessions) -> None:
    async with catalog_sessions() as session:
        assert await session.scalar(text("SELECT current_user")) == "mpr_catalog"
        with pytest.raises(DBAPIError, match="permission denied for table jobs"):
            await session.execute(text("DELETE FROM jobs"))
