"""Per-request dataloaders: every asset or asset's jobs asked for in one tick is one query."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from graphene.utils.dataloader import DataLoader

from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.jobs import JobService
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.jobs import JobRecord

ASSET_JOBS_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Loaders:
    asset: DataLoader
    asset_jobs: DataLoader


def make_loaders(assets: AssetService, jobs: JobService) -> Loaders:
    async def load_assets(ids: list[UUID]) -> list[AssetRecord | None]:
        found = await assets.many(ids)
        return [found.get(i) for i in ids]

    async def load_asset_jobs(ids: list[UUID]) -> list[list[JobRecord]]:
        grouped = await jobs.for_assets(ids, ASSET_JOBS_LIMIT)
        return [grouped.get(i, []) for i in ids]

    return Loaders(asset=DataLoader(load_assets), asset_jobs=DataLoader(load_asset_jobs))
