"""FastAPI dependencies as Annotated aliases (the full-stack-fastapi-template way)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.jobs import DEFAULT_PAGE, MAX_PAGE, JobService


async def get_gateway(request: Request) -> Any:
    """The composed services (``mpr_gateway.app.Gateway``)."""
    return request.app.state.gateway


async def require_client(request: Request) -> str:
    """The calling client's name; 401 without a valid API key."""
    return request.app.state.gateway.api_keys.authenticate(request.headers)


async def get_jobs(request: Request) -> JobService:
    return request.app.state.gateway.jobs


async def get_assets(request: Request) -> AssetService:
    return request.app.state.gateway.assets


GatewayDep = Annotated[Any, Depends(get_gateway)]
Client = Annotated[str, Depends(require_client)]
Jobs = Annotated[JobService, Depends(get_jobs)]
Assets = Annotated[AssetService, Depends(get_assets)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size (1-{MAX_PAGE}).")]
Cursor = Annotated[
    str | None,
    Query(max_length=4096, description="Opaque next_cursor of the previous page."),
]
DEFAULT_LIMIT = DEFAULT_PAGE
