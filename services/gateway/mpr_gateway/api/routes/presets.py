"""/api/presets: the named outputs a job can ask for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mpr_gateway.api.routes._responses import errors
from mpr_gateway.application.presets import list_presets
from mpr_gateway.deps import require_client
from mpr_shared.contracts import JobKind
from mpr_shared.presets import Preset

router = APIRouter(
    prefix="/api/presets",
    tags=["presets"],
    dependencies=[Depends(require_client)],
    responses=errors(401, 422),
)


@router.get("", response_model=list[Preset])
async def presets(kind: Annotated[JobKind | None, Query()] = None) -> list[Preset]:
    """Every preset, or those of one job kind."""
    return list_presets(kind)
