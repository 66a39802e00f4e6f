"""The catalog's composition root: ``bootstrap`` builds everything once, ``running`` runs it.

``bootstrap(settings, **overrides)`` does no I/O: it builds the broker (subscribers and the
documented publishers), the adapters and the use cases. Tests override ports with fakes
(``uow=``, ``lister=``, ``prober=``). ``running(container)`` connects, declares the topology,
starts the background work and the subscribers, and stops them in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from mpr_catalog import subscribers
from mpr_catalog.adapters.db import SqlUnitOfWorkFactory, database_check
from mpr_catalog.adapters.ffprobe import FfprobeProber
from mpr_catalog.adapters.s3 import Presigner, S3ObjectLister, bucket_check
from mpr_catalog.application.notifications import BucketNotifications
from mpr_catalog.application.ports import MediaProber, ObjectLister, UnitOfWorkFactory
from mpr_catalog.application.probe_queue import ProbeScheduler
from mpr_catalog.application.probing import AssetProber
from mpr_catalog.application.reconcile import reconcile_forever
from mpr_catalog.application.registration import Registrar
from mpr_catalog.application.scanning import Scanner
from mpr_catalog.deps import CONTAINER
from mpr_catalog.metrics import Metrics
from mpr_catalog.settings import CatalogSettings
from mpr_shared import storage
from mpr_shared.contracts import ASSET_EVENTS, CreateJob
from mpr_shared.db import engine_for, session_factory
from mpr_shared.db.models import CatalogOutbox
from mpr_shared.health import Check, Dependency, Health, serving
from mpr_shared.messaging import make_broker
from mpr_shared.outbox import BrokerPublisher, OutboxRelay
from mpr_shared.topology import COMMANDS, EVENTS, declare_topology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Container:
    """Everything the catalog runs, built once by ``bootstrap``."""

    settings: CatalogSettings
    broker: RabbitBroker
    engine: AsyncEngine
    relay: OutboxRelay
    metrics: Metrics
    health: Health
    registrar: Registrar
    scanner: Scanner
    notifications: BucketNotifications
    prober: AssetProber
    probes: ProbeScheduler


def bootstrap(
    settings: CatalogSettings,
    *,
    uow: UnitOfWorkFactory | None = None,
    lister: ObjectLister | None = None,
    prober: MediaProber | None = None,
) -> Container:
    """Build the catalog from its settings; the keyword arguments replace ports (tests)."""
    broker = _broker(settings)
    engine = engine_for(settings)
    sessions = session_factory(engine)
    relay = OutboxRelay(
        BrokerPublisher(broker), sessions, CatalogOutbox, poll_interval=settings.outbox_poll_seconds
    )
    metrics = Metrics(outbox_lag=relay.lag_seconds)
    s3 = storage.get_s3_client(settings)
    bucket = settings.s3_bucket_in
    units: UnitOfWorkFactory = uow or SqlUnitOfWorkFactory(sessions, on_commit=relay.wake)
    media: MediaProber = prober or FfprobeProber(
        Presigner(s3).url, timeout=settings.probe_timeout_seconds
    )
    asset_prober = AssetProber(units, media, bucket, auto_preset=settings.auto_preset)
    probes = ProbeScheduler(
        asset_prober.probe,
        concurrency=settings.probe_concurrency,
        attempts=settings.probe_attempts,
        on_result=metrics.probed,
    )
    registrar = Registrar(units, probes, bucket)
    container = Container(
        settings=settings,
        broker=broker,
        engine=engine,
        relay=relay,
        metrics=metrics,
        health=_health(broker, engine, s3, bucket, metrics),
        registrar=registrar,
        scanner=_scanner(settings, lister or S3ObjectLister(s3), registrar, units),
        notifications=BucketNotifications(units, probes, bucket),
        prober=asset_prober,
        probes=probes,
    )
    broker.context.set_global(CONTAINER, container)
    return container


def _scanner(
    settings: CatalogSettings, lister: ObjectLister, registrar: Registrar, uow: UnitOfWorkFactory
) -> Scanner:
    return Scanner(
        lister,
        registrar,
        uow,
        batch_size=settings.scan_batch_size,
        concurrency=settings.scan_concurrency,
    )


def _health(
    broker: RabbitBroker, engine: AsyncEngine, s3: Any, bucket: str, metrics: Metrics
) -> Health:
    """Readiness: without RabbitMQ, the database or the bucket the catalog does nothing."""
    dependencies = [
        Dependency("rabbitmq", _broker_check(broker), critical=True),
        Dependency("database", database_check(engine), critical=True),
        Dependency("s3", bucket_check(s3, bucket), critical=True),
    ]
    return Health("catalog", dependencies, metrics.registry)


def _broker(settings: CatalogSettings) -> RabbitBroker:
    """The broker with every subscriber and a documented publisher per message sent."""
    broker = make_broker(settings.amqp_url.get_secret_value(), service="catalog")
    broker.include_router(subscribers.router(settings))
    # The outbox relay does the publishing; these objects document it in AsyncAPI.
    for event in ASSET_EVENTS:
        broker.publisher(
            exchange=EVENTS,
            routing_key=event.ROUTING_KEY,
            schema=event,
            title=f"{event.ROUTING_KEY}:{event.__name__}",
            description=event.__doc__,
        )
    broker.publisher(
        exchange=COMMANDS,
        routing_key=CreateJob.ROUTING_KEY,
        schema=CreateJob,
        title=f"{CreateJob.ROUTING_KEY}:CreateJob",
        description="Auto-job rule (AUTO_TRANSCODE_PRESET): a job for each new video asset.",
    )
    return broker


def _broker_check(broker: RabbitBroker) -> Check:
    async def check() -> None:
        if not await broker.ping(timeout=2.0):
            raise ConnectionError("RabbitMQ does not answer")

    return check


@contextlib.asynccontextmanager
async def running(container: Container) -> AsyncIterator[Container]:
    """The catalog running in this event loop until the block ends."""
    c, settings = container, container.settings
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(c.engine.dispose)
        await c.broker.connect()
        stack.push_async_callback(c.broker.stop)  # last: the relay flushes through it
        await declare_topology(c.broker, settings)
        await c.relay.start()
        stack.push_async_callback(_stop_relay, c.relay)
        await _start_probes(c)
        stack.push_async_callback(c.probes.stop)
        stack.push_async_callback(c.scanner.stop)
        if settings.scan_interval_seconds > 0:
            await stack.enter_async_context(_reconciling(c))
        if settings.health_port:
            await stack.enter_async_context(
                serving(c.health.app(), settings.health_host, settings.health_port)
            )
        await c.broker.start()
        # First to stop: no new deliveries; the ones in flight finish (graceful_timeout).
        stack.push_async_callback(_stop_consuming, c.broker)
        log.info("catalog of bucket %s running", settings.s3_bucket_in)
        yield c
        log.info("catalog stopping")


async def _start_probes(c: Container) -> None:
    """Start probing, resuming the probes a restart interrupted."""
    await c.probes.start()
    pending = await c.prober.pending()
    if pending:
        log.info("resuming %d pending probes", len(pending))
    c.probes.submit(pending)


@contextlib.asynccontextmanager
async def _reconciling(c: Container) -> AsyncIterator[None]:
    """The reconcile loop runs in the background while the block runs."""
    loop = reconcile_forever(
        c.scanner,
        c.prober,
        c.probes,
        interval=c.settings.scan_interval_seconds,
        on_report=functools.partial(c.metrics.scanned, "reconcile"),
    )
    task = asyncio.create_task(loop, name="reconcile")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _stop_consuming(broker: RabbitBroker) -> None:
    """Stop every subscriber (in-flight messages finish); the connection stays for the relay."""
    for subscriber in broker.subscribers:
        await subscriber.stop()


async def _stop_relay(relay: OutboxRelay) -> None:
    try:
        await relay.stop()  # and flush what the last handlers committed
    except Exception:
        log.exception("outbox relay: final flush failed; rows stay pending until restart")
