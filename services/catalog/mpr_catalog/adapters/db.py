"""The asset repository and unit of work on SQLAlchemy (async; SQLite and PostgreSQL).

Writes are bulk statements: one multi-row INSERT ... ON CONFLICT DO NOTHING per page, and
compare-and-set UPDATEs sent as one executemany, so a page of 1000 keys is a few round trips.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Self, cast

from sqlalchemy import (
    ARRAY,
    CursorResult,
    String,
    Table,
    Update,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mpr_catalog.domain.assets import ACTIVE, AssetChange, AssetState, NewAsset
from mpr_catalog.domain.probe import ProbeOutcome
from mpr_shared.contracts import Message, ProbeStatus
from mpr_shared.db.models import Asset, CatalogOutbox
from mpr_shared.health import Check
from mpr_shared.outbox import outbox_row

ASSETS = cast(Table, Asset.__table__)
OUTBOX = cast(Table, CatalogOutbox.__table__)
_STATE_COLUMNS = (
    ASSETS.c.id,
    ASSETS.c.bucket,
    ASSETS.c.key,
    ASSETS.c.media_type,
    ASSETS.c.size_bytes,
    ASSETS.c.etag,
    ASSETS.c.status,
    ASSETS.c.sequencer,
    ASSETS.c.probe_status,
    ASSETS.c.updated_at,
    ASSETS.c.deleted_at,
)
# Keep IN lists well below SQLite's and asyncpg's bind-parameter limits (32766 / 32767).
_IN_CHUNK = 1000


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything MPR stores is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _state(row: Any) -> AssetState:
    return AssetState(
        id=row.id,
        bucket=row.bucket,
        key=row.key,
        media_type=row.media_type,
        size=row.size_bytes,
        etag=row.etag,
        status=row.status,
        sequencer=row.sequencer,
        probe_status=row.probe_status,
        updated_at=_aware(row.updated_at),
        deleted_at=_aware(row.deleted_at) if row.deleted_at else None,
    )


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlAssetRepository:
    """AssetRepository on one AsyncSession (the unit of work's transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def _insert(self) -> postgresql.Insert | sqlite.Insert:
        if self._postgres:
            return postgresql.insert(ASSETS)
        return sqlite.insert(ASSETS)

    async def find(self, bucket: str, keys: Sequence[str]) -> dict[str, AssetState]:
        found: dict[str, AssetState] = {}
        for chunk in _chunks(list(keys)):
            query = select(*_STATE_COLUMNS).where(ASSETS.c.bucket == bucket)
            if self._postgres:
                # A join on one array parameter: "key IN ($2, …, $1001)" makes a prepared
                # statement compare every row with every key (no hashing of parameters).
                keys_param = bindparam("keys", chunk, type_=ARRAY(String))
                wanted = func.unnest(keys_param).table_valued("key").render_derived(name="wanted")
                query = query.join(wanted, ASSETS.c.key == wanted.c.key)
            else:
                query = query.where(ASSETS.c.key.in_(chunk))
            for row in await self._session.execute(query):
                found[row.key] = _state(row)
        return found

    async def get(self, asset_id: uuid.UUID) -> AssetState | None:
        row = (
            await self._session.execute(select(*_STATE_COLUMNS).where(ASSETS.c.id == asset_id))
        ).first()
        return _state(row) if row else None

    async def insert(self, assets: Sequence[NewAsset]) -> set[str]:
        if not assets:
            return set()
        now = datetime.now(UTC)
        rows = [
            {
                "id": a.id,
                "bucket": a.bucket,
                "key": a.key,
                "media_type": a.media_type,
                "size_bytes": a.size,
                "etag": a.etag,
                "status": a.status,
                "sequencer": a.sequencer,
                "probe_status": ProbeStatus.PENDING.value,
                "created_at": now,
                "updated_at": now,
                "deleted_at": a.deleted_at,
            }
            for a in assets
        ]
        # Multi-row VALUES (SQLAlchemy "insertmanyvalues"); RETURNING lists only the rows
        # this statement inserted, so a concurrent scan's rows are never counted twice.
        stmt = (
            self._insert()
            .on_conflict_do_nothing(index_elements=["bucket", "key"])
            .returning(ASSETS.c.key)
        )
        result = await self._session.execute(stmt, rows)
        return set(result.scalars())

    async def apply(self, changes: Sequence[AssetChange]) -> set[uuid.UUID]:
        if not changes:
            return set()
        now = datetime.now(UTC)
        for reprobe in (False, True):
            group = [c for c in changes if c.reprobe is reprobe]
            if group:
                await self._session.execute(
                    _cas_update(reprobe), [_cas_params(c, now) for c in group]
                )
        # executemany reports no per-row counts everywhere; read back what now holds.
        wanted = {c.expected.id: c for c in changes}
        applied: set[uuid.UUID] = set()
        for chunk in _chunks(list(wanted)):
            query = select(
                ASSETS.c.id, ASSETS.c.size_bytes, ASSETS.c.etag, ASSETS.c.status, ASSETS.c.sequencer
            ).where(ASSETS.c.id.in_(chunk))
            for row in await self._session.execute(query):
                c = wanted[row.id]
                if (row.size_bytes, row.etag, row.status, row.sequencer) == (
                    c.size,
                    c.etag,
                    c.status,
                    c.sequencer,
                ):
                    applied.add(row.id)
        return applied

    async def save_probe(self, asset: AssetState, outcome: ProbeOutcome) -> bool:
        stmt = (
            update(ASSETS)
            .where(
                ASSETS.c.id == asset.id,
                ASSETS.c.etag == asset.etag,
                ASSETS.c.size_bytes == asset.size,
                ASSETS.c.status == ACTIVE,
                ASSETS.c.probe_status == ProbeStatus.PENDING.value,
            )
            .values(
                probe_status=outcome.status.value,
                probe=outcome.summary,
                probe_error=outcome.error,
                duration_seconds=outcome.duration,
                updated_at=datetime.now(UTC),
            )
        )
        result = cast(CursorResult[Any], await self._session.execute(stmt))
        return result.rowcount == 1

    async def pending_probes(self, bucket: str) -> list[uuid.UUID]:
        query = (
            select(ASSETS.c.id)
            .where(
                ASSETS.c.bucket == bucket,
                ASSETS.c.status == ACTIVE,
                ASSETS.c.probe_status == ProbeStatus.PENDING.value,
            )
            .order_by(ASSETS.c.created_at)
        )
        return list((await self._session.execute(query)).scalars())

    async def active_before(self, bucket: str, before: datetime) -> list[AssetState]:
        query = select(*_STATE_COLUMNS).where(
            ASSETS.c.bucket == bucket, ASSETS.c.status == ACTIVE, ASSETS.c.updated_at < before
        )
        return [_state(row) for row in await self._session.execute(query)]


def _cas_update(reprobe: bool) -> Update:
    """UPDATE one asset if it still holds what the decision saw (bind names avoid columns)."""
    values: dict[str, Any] = {
        "size_bytes": bindparam("v_size"),
        "etag": bindparam("v_etag"),
        "status": bindparam("v_status"),
        "sequencer": bindparam("v_sequencer"),
        "deleted_at": bindparam("v_deleted_at"),
        "updated_at": bindparam("v_now"),
    }
    if reprobe:
        values |= {
            "probe_status": ProbeStatus.PENDING.value,
            "probe": None,
            "probe_error": None,
            "duration_seconds": None,
        }
    return (
        update(ASSETS)
        .where(
            ASSETS.c.id == bindparam("e_id"),
            ASSETS.c.size_bytes == bindparam("e_size"),
            ASSETS.c.etag == bindparam("e_etag"),
            ASSETS.c.status == bindparam("e_status"),
            ASSETS.c.sequencer.is_not_distinct_from(bindparam("e_sequencer")),
        )
        .values(**values)
    )


def _cas_params(change: AssetChange, now: datetime) -> dict[str, Any]:
    expected = change.expected
    return {
        "e_id": expected.id,
        "e_size": expected.size,
        "e_etag": expected.etag,
        "e_status": expected.status,
        "e_sequencer": expected.sequencer,
        "v_size": change.size,
        "v_etag": change.etag,
        "v_status": change.status,
        "v_sequencer": change.sequencer,
        "v_deleted_at": change.deleted_at,
        "v_now": now,
    }


class SqlOutbox:
    """Rows for ``catalog_outbox`` (``mpr_shared.outbox.outbox_row``), inserted at commit."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, *messages: Message) -> None:
        self.rows += [outbox_row(m) for m in messages]


class SqlUnitOfWork:
    """One session and transaction; ``on_commit`` runs after a commit that added messages."""

    assets: SqlAssetRepository
    outbox: SqlOutbox

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], on_commit: Callable[[], None]
    ) -> None:
        self._sessions = sessions
        self._on_commit = on_commit

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        self.assets = SqlAssetRepository(self._session)
        self.outbox = SqlOutbox()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._session.rollback()
        finally:
            await self._session.close()

    async def commit(self) -> None:
        """The asset writes and the outbox rows, in one transaction."""
        rows, self.outbox.rows = self.outbox.rows, []
        if rows:
            await self._session.execute(OUTBOX.insert(), rows)
        await self._session.commit()
        if rows:
            self._on_commit()


class SqlUnitOfWorkFactory:
    """The UnitOfWorkFactory of the catalog's use cases; ``on_commit`` wakes the outbox relay."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], on_commit: Callable[[], None]
    ) -> None:
        self._sessions = sessions
        self._on_commit = on_commit

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions, self._on_commit)


def database_check(engine: AsyncEngine) -> Check:
    """A readiness check: the database answers a query."""

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check
