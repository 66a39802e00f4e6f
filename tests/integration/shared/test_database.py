"""Migrations on SQLite and PostgreSQL (the outbox relay: test_outbox.py)."""

from __future__ import annotations

from sqlalchemy import inspect

from mpr_shared.db import create_engine
from mpr_shared.db.models import TABLE_WRITERS


async def test_migrations_create_every_table(database_url: str):
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert set(TABLE_WRITERS) <= tables


async def test_models_and_migrations_agree(database_url: str):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mpr_shared.db.models import Base

    engine = create_engine(database_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    await engine.dispose()
    assert diff == [], f"models changed without a migration: {diff}"
