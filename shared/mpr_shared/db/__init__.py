"""Database access: async engine and session factory for SQLite (default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from mpr_shared.settings import CommonSettings, normalize_database_url


def create_engine(database_url: str, *, echo: bool = False, role: str | None = None) -> AsyncEngine:
    """An async engine (on PostgreSQL acting as ``role``); SQLite gets WAL and a busy timeout."""
    url = make_url(normalize_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: it costs a round trip per checkout; a dropped connection invalidates the pool.
    return create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        connect_args=role_connect_args(role),
    )


def engine_for(settings: CommonSettings) -> AsyncEngine:
    """The engine of a service's settings: DATABASE_URL, acting as DATABASE_ROLE."""
    return create_engine(settings.async_database_url, role=settings.database_role)


def role_connect_args(role: str | None) -> dict[str, Any]:
    """asyncpg arguments that make a PostgreSQL session act as ``role`` from its first query."""
    # A startup parameter, like SET ROLE but among the session's defaults, so no rollback or
    # pool reset undoes it. The login user must be a member of the role (migration 0003 makes
    # the migrating user one). https://www.postgresql.org/docs/current/sql-set-role.html
    return {"server_settings": {"role": role}} if role else {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and one writer work at once across processes.
    # https://www.sqlite.org/wal.html
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
