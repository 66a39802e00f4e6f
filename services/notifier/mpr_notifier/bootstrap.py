"""The notifier's composition root: settings → adapters, use cases, broker and health, built
once; ``running`` connects, starts and stops them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from mpr_notifier.adapters.db import SqlWebhookTargets
from mpr_notifier.adapters.webhooks import HttpWebhookSender, make_client
from mpr_notifier.application.hub import EventHub
from mpr_notifier.application.ports import WebhookSender, WebhookTargets
from mpr_notifier.application.webhooks import Webhooks
from mpr_notifier.metrics import Metrics
from mpr_notifier.settings import NotifierSettings
from mpr_notifier.subscribers import router
from mpr_shared.auth import ApiKeys
from mpr_shared.db import engine_for, session_factory
from mpr_shared.health import Dependency, Health
from mpr_shared.messaging import make_broker
from mpr_shared.topology import declare_topology

log = logging.getLogger(__name__)
BROKER_PING_SECONDS = 2.0


@dataclass(frozen=True)
class Container:
    """Everything the notifier's entrypoints use, built once by ``bootstrap``."""

    settings: NotifierSettings
    api_keys: ApiKeys
    hub: EventHub
    metrics: Metrics
    webhooks: Webhooks
    broker: RabbitBroker
    health: Health
    engine: AsyncEngine
    http: httpx.AsyncClient


def bootstrap(
    settings: NotifierSettings,
    *,
    targets: WebhookTargets | None = None,
    sender: WebhookSender | None = None,
) -> Container:
    """Build the notifier without I/O; tests pass fakes for the webhook ports."""
    engine = engine_for(settings)
    http = make_client(settings.webhook_timeout_seconds)
    targets = targets or SqlWebhookTargets(session_factory(engine))
    sender = sender or HttpWebhookSender(
        http,
        settings.webhook_secret.get_secret_value(),
        max_attempts=settings.webhook_max_attempts,
        backoff_seconds=settings.webhook_backoff_seconds,
        allow_private=settings.webhook_allow_private,
    )
    hub = EventHub(settings.sse_buffer_size, settings.sse_client_queue_size)
    metrics = Metrics()
    metrics.clients.set_function(lambda: hub.clients)
    broker = make_broker(settings.amqp_url.get_secret_value(), service="notifier")
    broker.include_router(router(settings.instance_id))
    container = Container(
        settings=settings,
        api_keys=settings.api_keys,
        hub=hub,
        metrics=metrics,
        webhooks=Webhooks(targets, sender),
        broker=broker,
        health=notifier_health(broker, targets, metrics),
        engine=engine,
        http=http,
    )
    broker.context.set_global("container", container)  # what deps.py's Context aliases read
    return container


def notifier_health(broker: RabbitBroker, targets: WebhookTargets, metrics: Metrics) -> Health:
    """Ready while RabbitMQ answers; the database only serves webhooks, so it is not critical."""

    async def rabbitmq() -> None:
        if not await broker.ping(timeout=BROKER_PING_SECONDS):
            raise ConnectionError("not connected to RabbitMQ")

    dependencies = [
        Dependency("rabbitmq", rabbitmq, critical=True),
        Dependency("database", targets.ping, critical=False),
    ]
    return Health("notifier", dependencies, metrics.registry)


@asynccontextmanager
async def running(container: Container) -> AsyncIterator[Container]:
    """Consume events while the block runs; on exit close SSE streams, then stop consuming
    (in-flight handlers finish), then release the HTTP client and the database."""
    settings, broker = container.settings, container.broker
    if not container.api_keys:
        log.warning("MPR_API_KEYS is empty: /api/events is open (%s)", settings.mpr_env)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(container.engine.dispose)
        stack.push_async_callback(container.http.aclose)
        stack.push_async_callback(broker.stop)
        # Ends open streams; clients reconnect, with Last-Event-ID, to another replica.
        stack.callback(container.hub.close)
        await broker.connect()
        await declare_topology(broker, settings)
        await broker.start()
        log.info(
            "notifier %s consuming; SSE on http://%s:%d/api/events",
            settings.instance_id,
            settings.notifier_host,
            settings.notifier_port,
        )
        yield container
