"""The notifier's HTTP app: the SSE stream, the shared health routes, CORS for the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

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
    allow_dashboards(app, container.settings.cors_origins)
    return app


def allow_dashboards(app: FastAPI, origins: tuple[str, ...]) -> None:
    """Let web pages from ``origins`` (CORS_ORIGINS) read the event stream."""
    if not origins:
        return
    # EventSource sends no credentials and, with ?api_key=, no custom header; a script that
    # fetches the stream may send the key as a header, and reconnects send Last-Event-ID.
    # https://developer.mozilla.org/en-US/docs/Web/HTTP/Guides/CORS
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET"],
        allow_headers=["Authorization", "X-API-Key", "Last-Event-ID"],
        max_age=600,
    )
