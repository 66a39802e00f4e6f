"""/api/assets: list and read registered media, and scan the input bucket."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from mpr_gateway.api.routes._responses import errors
from mpr_gateway.api.schemas import AssetDetailOut, AssetOut, AssetPage, JobOut, ScanRequest
from mpr_gateway.application.pages import DEFAULT_PAGE
from mpr_gateway.application.ports import AssetFilter
from mpr_gateway.deps import Assets, Client, Cursor, Jobs, Limit, require_client
from mpr_shared.contracts import ProbeStatus, ScanResult

router = APIRouter(
    prefix="/api/assets",
    tags=["assets"],
    dependencies=[Depends(require_client)],
    responses=errors(401, 422),
)


@router.post(
    "/scan",
    response_model=ScanResult,
    response_model_exclude_none=True,  # `error` only travels between catalog and gateway
    responses=errors(413, 429, 503),
)
async def scan(assets: Assets, client: Client, body: ScanRequest | None = None) -> ScanResult:
    """Ask the catalog to list the input bucket and register new media (request/reply).

    Rate-limited per API client (SCAN_RATE_PER_MINUTE): more get 429 with Retry-After."""
    return await assets.scan(body.prefix if body else "", client)


@router.get("", response_model=AssetPage)
async def list_assets(
    assets: Assets,
    type: Annotated[Literal["video", "audio"] | None, Query(description="Media type.")] = None,
    status: Annotated[Literal["active", "deleted"] | None, Query()] = None,
    probe_status: Annotated[ProbeStatus | None, Query()] = None,
    prefix: Annotated[str | None, Query(max_length=1024, description="Key prefix.")] = None,
    q: Annotated[str | None, Query(max_length=256, description="Substring of the key.")] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> AssetPage:
    """Registered assets by key, with keyset pagination."""
    filters = AssetFilter(type, status, probe_status.value if probe_status else None, prefix, q)
    page = await assets.page(filters, cursor, limit)
    return AssetPage(items=[AssetOut.of(a) for a in page.items], next_cursor=page.next_cursor)


@router.get("/{asset_id}", response_model=AssetDetailOut, responses=errors(404))
async def get_asset(asset_id: UUID, assets: Assets, jobs: Jobs) -> AssetDetailOut:
    """One asset: metadata, probe data and its jobs (newest first)."""
    asset = await assets.get(asset_id)
    asset_jobs = (await jobs.for_assets([asset_id])).get(asset_id, [])
    return AssetDetailOut(
        **AssetOut.of(asset).model_dump(),
        probe=asset.probe,
        jobs=[JobOut.of(j, jobs.outputs(j)) for j in asset_jobs],
    )
