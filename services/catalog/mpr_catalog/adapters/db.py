"""The asset repository and unit of work on SQLAlchemy (async; SQLite and PostgreSQL).

Writes are bulk statements: one multi-row INSERT ... ON CONFLICT DO NOTHING per page, and
compare-and-set UPDATEs sent as one executemany, so a page of 1000 keys is a few round trips.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import ARRAY, Row, String, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpr_catalog.domain import ACTIVE, AssetState
from mpr_catalog.ports import AssetChange, NewAsset
from mpr_catalog.probe import ProbeOutcome
from mpr_shared.contracts import Message, ProbeStatus
from mpr_shared.db.models import Asset, CatalogOutbox
from mpr_shared.outbox import outbox_row

ASSETS = Asset.__table__
OUTBOX = CatalogOutbox.__table__
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


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything MPR stores is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _state(row: Row[Any]) -> AssetState:
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
        deleted_at=_aware(row.deleted_at),
    )


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlAssetRepository:
    """AssetRepository on one AsyncSession (the unit of work's transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert(self):
        dialect = self._session.bind.dialect.name
        return (postgresql if dialect == "postgresql" else sqlite).insert(ASSETS)

    async def find(self, bucket: str, keys: Sequence[str]) -> dict[str, AssetState]:
        found: dict[str, AssetState] = {}
        postgres = self._session.bind.dialect.name == "postgresql"
        for chunk in _chunks(list(keys)):
            query = select(*_STATE_COLUMNS).where(ASSETS.c.bucket == bucket)
            if postgres:
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
        result = await self._session.execute(stmt)
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


def _cas_update(reprobe: bool):
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


class SqlUnitOfWork:
    """One session and transaction; ``on_commit`` runs after a commit that emitted messages."""

    assets: SqlAssetRepository

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_commit = on_commit
        self._emitted = 0

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        self.assets = SqlAssetRepository(self._session)
        self._emitted = 0
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._session.rollback()
        finally:
            await self._session.close()

    async def emit(self, messages: Iterable[Message]) -> None:
        rows = [outbox_row(m) for m in messages]
        if rows:
            await self._session.execute(OUTBOX.insert(), rows)
            self._emitted += len(rows)

    async def commit(self) -> None:
        await self._session.commit()
        if self._emitted and self._on_commit:
            self._on_commit()
        self._emitted = 0


def unit_of_work_factory(
    sessions: async_sessionmaker[AsyncSession], on_commit: Callable[[], None] | None = None
) -> Callable[[], SqlUnitOfWork]:
    """The UnitOfWorkFactory the catalog's use cases take."""
    return lambda: SqlUnitOfWork(sessions, on_commit)
