"""The one dependency mechanism: ``Annotated`` aliases for routes and subscribers.

Each alias carries two markers: FastAPI reads ``Depends`` (from ``request.app.state.container``)
and ignores ``Context``; FastStream reads ``Context`` (``container`` is registered on the
broker's context by ``bootstrap``) and ignores ``Depends``. So ``jobs: Jobs`` means the same
object in a route and in a subscriber. tests/unit/gateway/test_deps.py fails if either
library stops ignoring the other's marker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Query, Request
from faststream import Context

from mpr_gateway.adapters.callbacks import CallbackVerifier
from mpr_gateway.api.auth import authenticate
from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.jobs import JobService
from mpr_gateway.application.operations import QueueService, WorkerService
from mpr_gateway.application.pages import MAX_PAGE
from mpr_gateway.application.uploads import UploadService
from mpr_shared.health import Health

if TYPE_CHECKING:
    from mpr_gateway.bootstrap import Container


def get_container(request: Request) -> Container:
    """The container ``create_app`` put on the app."""
    container: Container = request.app.state.container
    return container


# The dependencies are async: FastAPI runs a sync one in a worker thread, a hop per
# dependency per request (GET /api/jobs/{id} cost ~0.3 ms more each, measured in-process).
async def get_jobs(request: Request) -> JobService:
    return get_container(request).jobs


async def get_assets(request: Request) -> AssetService:
    return get_container(request).assets


async def get_uploads(request: Request) -> UploadService:
    return get_container(request).uploads


async def get_callbacks(request: Request) -> CallbackVerifier:
    return get_container(request).callbacks


async def get_workers(request: Request) -> WorkerService:
    return get_container(request).workers


async def get_queue(request: Request) -> QueueService:
    return get_container(request).queue


async def get_health(request: Request) -> Health:
    return get_container(request).health


async def require_client(request: Request) -> str:
    """The calling client's name; 401 without a valid API key."""
    return authenticate(get_container(request).api_keys, request.headers)


Jobs = Annotated[JobService, Depends(get_jobs), Context("container.jobs")]
Assets = Annotated[AssetService, Depends(get_assets)]
Uploads = Annotated[UploadService, Depends(get_uploads)]
Callbacks = Annotated[CallbackVerifier, Depends(get_callbacks)]
Workers = Annotated[WorkerService, Depends(get_workers), Context("container.workers")]
Queue = Annotated[QueueService, Depends(get_queue)]
HealthDep = Annotated[Health, Depends(get_health)]
Client = Annotated[str, Depends(require_client)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size (1-{MAX_PAGE}).")]
Cursor = Annotated[
    str | None,
    Query(max_length=4096, description="Opaque next_cursor of the previous page."),
]
