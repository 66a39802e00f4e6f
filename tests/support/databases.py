"""Migrated, empty databases for tests, cheaply: Alembic runs once per session, not per test.

SQLite: one file migrated to head, copied for each test. PostgreSQL: one database migrated to
head, used as the template of each test's ``CREATE DATABASE`` (a file copy inside the server,
~0.1 s). Dropping a database makes PostgreSQL checkpoint (1-3 s here), so the drops run in a
background thread while the next tests run; the session waits for the last ones at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from mpr_shared.db.migrate import upgrade


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def migrated_sqlite(path: Path) -> Path:
    """``path`` as a SQLite database migrated to head (what each test then copies)."""
    upgrade(sqlite_url(path))
    return path


def copy_sqlite(template: Path, target: Path) -> str:
    """A copy of the migrated ``template`` at ``target``; its URL."""
    shutil.copyfile(template, target)
    return sqlite_url(target)


def admin_exec(server: str, sql: str) -> None:
    """Run CREATE/DROP DATABASE through asyncpg (autocommit), without a sync driver."""
    import asyncpg

    url = make_url(server)

    async def run() -> None:
        conn = await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            database=url.database or "postgres",
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def async_url(server: str, name: str) -> str:
    """The asyncpg URL of database ``name`` on ``server``."""
    url = make_url(server).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


class Dropper:
    """Drops PostgreSQL databases in a background thread; ``close`` waits for every drop."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.failures: list[str] = []
        self._names: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mpr-test-dropdb", daemon=True)
        self._thread.start()

    def drop(self, name: str) -> None:
        self._names.put(name)

    def _run(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                admin_exec(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # said at the end of the session, never silently lost
                self.failures.append(f"{name}: {exc}")

    def close(self) -> None:
        self._names.put(None)
        self._thread.join(timeout=300)
        for failure in self.failures:
            print(f"could not drop test database {failure}")


class PostgresDatabases:
    """Fresh databases cloned from one migrated template on ``server``."""

    def __init__(self, server: str, dropper: Dropper) -> None:
        self.server = server
        self.dropper = dropper
        self.template = f"mpr_test_template_{uuid.uuid4().hex[:12]}"
        admin_exec(server, f'CREATE DATABASE "{self.template}"')
        try:
            upgrade(async_url(server, self.template))
        except BaseException:
            self.dropper.drop(self.template)
            raise

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """A new database, migrated and empty (a copy of the template), dropped afterwards."""
        name = f"mpr_test_{uuid.uuid4().hex[:12]}"
        admin_exec(self.server, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        try:
            yield async_url(self.server, name)
        finally:
            self.dropper.drop(name)

    def close(self) -> None:
        self.dropper.drop(self.template)
