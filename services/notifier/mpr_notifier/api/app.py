"""The notifier's HTTP app: the SSE stream and the shared health routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mpr_notifier.api.errors import install_error_handlers
from mpr_notifier.api.routes import events
from mpr_notifier.bootstrap import Container, running


def create_app(container: Container) -> FastAPI:
    """The HTTP app over ``container``; its lifespan runs the notifier (``running``)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(container):
            yield

    app = FastAPI(
        title="MPR notifier",
        summary="Server-Sent Events of job and asset events; job webhooks.",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.container = container
    install_error_handlers(app)
    app.include_router(events.router)
    app.router.routes.extend(container.health.routes())
    return app
