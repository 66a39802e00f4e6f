"""Asset use cases: list and read what the catalog registered, and ask it to scan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from mpr_gateway.application.pages import DEFAULT_PAGE, Page
from mpr_gateway.application.ports import AssetFilter, Scanner, UnitOfWorkFactory
from mpr_gateway.application.rate_limit import RateLimit
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.cursor import decode_cursor, encode_cursor
from mpr_gateway.domain.errors import InvalidRequest, NotFound
from mpr_gateway.domain.keys import check_key, check_text
from mpr_shared.contracts import ScanResult


@dataclass(frozen=True, slots=True)
class AssetService:
    uow: UnitOfWorkFactory
    scanner: Scanner
    scan_limit: RateLimit

    async def get(self, asset_id: UUID) -> AssetRecord:
        async with self.uow() as uow:
            asset = await uow.assets.get(asset_id)
        if asset is None:
            raise NotFound(f"no asset {asset_id}; list the assets to find it")
        return asset

    async def many(self, asset_ids: Sequence[UUID]) -> dict[UUID, AssetRecord]:
        """Assets by id, batched (one query)."""
        async with self.uow() as uow:
            return {a.id: a for a in await uow.assets.many(asset_ids)}

    async def page(
        self, filters: AssetFilter, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[AssetRecord]:
        if filters.prefix:
            check_key(filters.prefix, "prefix")
        if filters.q:
            check_text(filters.q, "q")
        after = _after(cursor) if cursor else None
        async with self.uow() as uow:
            rows = await uow.assets.page(filters, after, limit + 1)
        items, more = rows[:limit], len(rows) > limit
        token = encode_cursor("assets", [items[-1].key, str(items[-1].id)]) if more else None
        return Page(items, token)

    async def scan(self, prefix: str, client: str) -> ScanResult:
        """Ask the catalog to scan the input bucket (request/reply); rate-limited per client."""
        check_key(prefix, "prefix", allow_empty=True)
        self.scan_limit.take(client)
        return await self.scanner.scan(prefix)


def _after(cursor: str) -> tuple[str, UUID]:
    key, asset_id = decode_cursor("assets", cursor, 2)
    try:
        return check_key(str(key)), UUID(str(asset_id))
    except (ValueError, InvalidRequest):
        raise InvalidRequest("cursor is corrupt; omit it for the first page") from None
