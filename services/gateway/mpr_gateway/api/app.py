"""The gateway's FastAPI app: REST routes, /graphql, health, error shape, body limit, metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from mpr_gateway.api.errors import install_error_handlers
from mpr_gateway.api.graphql.app import GraphQLEndpoint
from mpr_gateway.api.limits import BodySizeLimit
from mpr_gateway.api.openapi import install_openapi
from mpr_gateway.api.routes import assets, health, jobs, operations, presets, uploads
from mpr_gateway.api.routes.dashboard import install_dashboard
from mpr_gateway.bootstrap import Container, running
from mpr_gateway.metrics import MetricsMiddleware

DESCRIPTION = (
    "REST and GraphQL (/graphql) over the same application layer. Send an API key as "
    "`Authorization: Bearer <key>` or `X-API-Key: <key>`. Lists use keyset pagination: pass "
    "`next_cursor` back as `cursor`."
)


def create_app(container: Container) -> FastAPI:
    """The ASGI app over ``container``; its lifespan runs ``running(container)``."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(container):
            yield

    app = FastAPI(
        title="MPR gateway",
        version="1.0.0",
        summary="Register media in S3 and run FFmpeg jobs on it.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.container = container
    install_error_handlers(app)
    install_openapi(app)
    for router in (assets.router, jobs.router, presets.router, health.router):
        app.include_router(router)
    app.include_router(uploads.router)
    app.include_router(operations.router)
    settings = container.settings
    graphql = GraphQLEndpoint(settings.graphql_max_depth, settings.graphql_max_complexity)
    app.add_route("/graphql", graphql.handle, methods=["GET", "POST"], include_in_schema=False)
    install_dashboard(app)
    # Outermost first: metrics see every response, including the body limit's 413.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=container.metrics)
    return app
