"""The notifier's composition point: settings → hub, ports, broker and HTTP app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream.rabbit import RabbitBroker

from mpr_notifier.adapters.db import SqlWebhookTargets
from mpr_notifier.adapters.webhooks import HttpWebhookSender, make_client
from mpr_notifier.routes import events, ops
from mpr_notifier.runtime import Runtime
from mpr_notifier.settings import NotifierSettings, get_settings
from mpr_notifier.subscribers import build_router
from mpr_shared.db import create_engine, session_factory
from mpr_shared.messaging import make_broker
from mpr_shared.topology import declare_topology

log = logging.getLogger(__name__)


def build_broker(settings: NotifierSettings, runtime: Runtime | None = None) -> RabbitBroker:
    """The notifier's broker with both subscribers registered; it does not connect."""
    runtime = runtime or Runtime.create(settings)
    broker = make_broker(settings.amqp_url.get_secret_value(), service="notifier")
    broker.include_router(build_router(runtime))
    return broker


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """The HTTP app; the broker, database and HTTP client live for the app's lifespan."""
    settings = settings or get_settings()
    runtime = Runtime.create(settings)
    broker = build_broker(settings, runtime)
    runtime.metrics.clients.set_function(lambda: runtime.hub.clients)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.api_keys:
            log.warning("MPR_API_KEYS is empty: /api/events is open (%s)", settings.mpr_env)
        engine = create_engine(settings.async_database_url)
        client = make_client(settings.webhook_timeout_seconds)
        runtime.targets = SqlWebhookTargets(session_factory(engine))
        runtime.sender = HttpWebhookSender(
            client,
            settings.webhook_secret.get_secret_value(),
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            allow_private=settings.webhook_allow_private,
        )
        try:
            await broker.connect()
            await declare_topology(broker, settings)
            await broker.start()
            log.info(
                "notifier %s consuming; SSE on http://%s:%d/api/events",
                settings.instance_id,
                settings.notifier_host,
                settings.notifier_port,
            )
            yield
        finally:
            runtime.hub.close()  # ends open streams; clients reconnect with Last-Event-ID
            await broker.stop()  # waits for in-flight handlers (graceful_timeout)
            await client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="MPR notifier",
        summary="Server-Sent Events of job and asset events; job webhooks.",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.broker = broker
    app.include_router(events.router)
    app.include_router(ops.router)
    return app
