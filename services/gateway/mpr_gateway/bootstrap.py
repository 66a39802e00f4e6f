"""The gateway's composition root: settings → adapters → application → Container, and its run.

``bootstrap(settings)`` builds everything once, without I/O (so ``bootstrap(settings).broker``
documents the messages for AsyncAPI); tests pass fakes for ports as keyword arguments.
``running(container)`` connects RabbitMQ (declaring the topology), starts the outbox relay and
the subscribers, and stops them in reverse; the FastAPI app's lifespan runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from faststream.rabbit import RabbitBroker

from mpr_gateway.adapters.broker import (
    BrokerConnection,
    BrokerQueueProbe,
    BrokerScanner,
    keep_connecting,
)
from mpr_gateway.adapters.callbacks import CallbackVerifier
from mpr_gateway.adapters.db import SqlDatabase
from mpr_gateway.adapters.operations import SqlJobFigures, SqlWorkers
from mpr_gateway.adapters.rabbit_management import ManagementApi, NoUnackedCount, amqp_vhost
from mpr_gateway.adapters.s3 import CachedPresigner, S3Buckets, S3Sources
from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.jobs import JobService
from mpr_gateway.application.operations import QueueService, WorkerService
from mpr_gateway.application.ports import (
    Presigner,
    Scanner,
    SourceObjects,
    UnitOfWorkFactory,
    WorkerRegistry,
)
from mpr_gateway.application.rate_limit import RateLimit
from mpr_gateway.metrics import GatewayMetrics
from mpr_gateway.settings import GatewaySettings
from mpr_gateway.subscribers import build_router
from mpr_shared.auth import ApiKeys
from mpr_shared.channel_publisher import ChannelPublisher
from mpr_shared.contracts import CancelJob, JobCancelled, JobQueued, ProcessMedia, ScanBucket
from mpr_shared.db import session_factory
from mpr_shared.db.models import GatewayOutbox
from mpr_shared.health import Dependency, Health
from mpr_shared.messaging import make_broker
from mpr_shared.outbox import OutboxRelay
from mpr_shared.topology import COMMANDS, EVENTS, TRANSCODER_JOBS

log = logging.getLogger(__name__)

SERVICE = "gateway"
RELAY_STOP_SECONDS = 10.0
# What the gateway publishes, for AsyncAPI: (exchange, message, description).
PUBLISHED = (
    (COMMANDS, ProcessMedia, "Run a job (outbox; message priority = job priority 0-9)."),
    (COMMANDS, CancelJob, "Stop a job on every transcoder (outbox)."),
    (COMMANDS, ScanBucket, "Scan the input bucket (request/reply; reply is ScanResult)."),
    (EVENTS, JobQueued, "A job was accepted (outbox)."),
    (EVENTS, JobCancelled, "A queued job was cancelled before it ran (outbox)."),
)


@dataclass(frozen=True, slots=True)
class Container:
    """Everything a request or a message handler needs, built once per process."""

    settings: GatewaySettings
    db: SqlDatabase
    broker: RabbitBroker
    relay: OutboxRelay
    jobs: JobService
    assets: AssetService
    api_keys: ApiKeys
    callbacks: CallbackVerifier
    metrics: GatewayMetrics
    health: Health
    workers: WorkerService
    queue: QueueService
    unacked: ManagementApi | NoUnackedCount


def bootstrap(
    settings: GatewaySettings,
    *,
    uow: UnitOfWorkFactory | None = None,
    presigner: Presigner | None = None,
    sources: SourceObjects | None = None,
    scanner: Scanner | None = None,
    worker_registry: WorkerRegistry | None = None,
) -> Container:
    """The gateway, wired (no I/O); the keyword arguments replace a port's adapter."""
    db = SqlDatabase(settings.async_database_url, settings.db_pool_size, settings.database_role)
    broker = _broker(settings)
    relay = _relay(settings, db, broker)
    metrics = GatewayMetrics()
    metrics.watch_outbox(relay.lag_seconds)
    uow = uow or db.unit_of_work
    jobs = JobService(
        uow=uow,
        bucket_in=settings.s3_bucket_in,
        bucket_out=settings.s3_bucket_out,
        presigner=presigner or CachedPresigner(settings, settings.presign_expires_seconds),
        sources=sources or S3Sources(settings),
        wake_relay=relay.wake,
        telemetry=metrics,
    )
    assets = AssetService(
        uow=uow,
        scanner=scanner or BrokerScanner(broker, settings.scan_timeout_seconds),
        scan_limit=RateLimit(settings.scan_rate_per_minute, "scan"),
    )
    secret = settings.callback_secret.get_secret_value() if settings.callback_secret else None
    unacked = _unacked(settings)
    container = Container(
        settings=settings,
        db=db,
        broker=broker,
        relay=relay,
        jobs=jobs,
        assets=assets,
        api_keys=ApiKeys(settings.api_key_map),
        callbacks=CallbackVerifier(secret),
        metrics=metrics,
        health=_health(db, broker, settings, metrics),
        workers=WorkerService(worker_registry or SqlWorkers(db), settings.worker_timeout_seconds),
        queue=QueueService(
            TRANSCODER_JOBS.name, BrokerQueueProbe(broker), unacked, SqlJobFigures(db)
        ),
        unacked=unacked,
    )
    broker.context.set_global("container", container)  # subscribers' Context("container.…")
    return container


def _broker(settings: GatewaySettings) -> RabbitBroker:
    """The gateway's broker: its subscribers and documented publishers, not yet connected."""
    broker = make_broker(
        settings.amqp_url.get_secret_value(), service=SERVICE, prefetch=settings.event_prefetch
    )
    broker.include_router(build_router())
    for exchange, message, description in PUBLISHED:
        broker.publisher(
            exchange=exchange,
            routing_key=message.ROUTING_KEY,
            schema=message,
            title=f"gateway.{message.ROUTING_KEY}",
            description=description,
        )
    return broker


def _unacked(settings: GatewaySettings) -> ManagementApi | NoUnackedCount:
    """The management API when RABBITMQ_MANAGEMENT_URL is set (no connection until asked)."""
    if settings.rabbitmq_management_url is None:
        return NoUnackedCount()
    url = settings.rabbitmq_management_url.get_secret_value()
    return ManagementApi(url, amqp_vhost(settings.amqp_url.get_secret_value()))


def _relay(settings: GatewaySettings, db: SqlDatabase, broker: RabbitBroker) -> OutboxRelay:
    """The outbox relay, publishing on the channel publisher (mpr_shared.channel_publisher)."""
    return OutboxRelay(
        ChannelPublisher(broker),
        session_factory(db.engine),
        GatewayOutbox,
        poll_interval=settings.outbox_poll_seconds,
        write_lock=db.write_lock,
    )


def _health(
    db: SqlDatabase, broker: RabbitBroker, settings: GatewaySettings, metrics: GatewayMetrics
) -> Health:
    """The database is critical; RabbitMQ and S3 are not: jobs wait in the outbox meanwhile."""
    return Health(
        SERVICE,
        [
            Dependency("database", db.ping, critical=True),
            Dependency("rabbitmq", BrokerConnection(broker).check, critical=False),
            Dependency("s3", S3Buckets(settings).check, critical=False),
        ],
        metrics.registry,
    )


@contextlib.asynccontextmanager
async def running(container: Container) -> AsyncIterator[None]:
    """Start-up and shutdown. Jobs are accepted even while RabbitMQ is down: they wait in the
    outbox and the relay publishes them once the broker is back."""
    connecting = asyncio.create_task(
        keep_connecting(container.broker, container.settings), name="gateway-broker-connect"
    )
    done, _ = await asyncio.wait(
        {connecting}, timeout=container.settings.broker_startup_wait_seconds
    )
    if not done:
        log.warning("starting without RabbitMQ; jobs wait in the outbox until it is reachable")
    await container.relay.start()
    # What exists now lives as long as the process (modules, routes, schemas, engines): keep
    # the cyclic GC from re-scanning it in every full collection. Under load a full
    # collection of the ~230k objects took ~85 ms and ran every ~0.5 s, stalling every
    # request in flight. https://docs.python.org/3/library/gc.html#gc.freeze
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        await _stop(container, connecting)


async def _stop(container: Container, connecting: asyncio.Task[None]) -> None:
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await connecting
    try:
        await asyncio.wait_for(container.relay.stop(), timeout=RELAY_STOP_SECONDS)
    except Exception as exc:  # pending rows stay in the outbox for the next start
        log.warning("outbox relay did not flush on shutdown: %s", exc)
    with contextlib.suppress(Exception):
        await container.broker.stop()
    if isinstance(container.unacked, ManagementApi):
        await container.unacked.close()
    await container.db.dispose()
