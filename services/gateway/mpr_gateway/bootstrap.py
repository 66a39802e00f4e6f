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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

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
from mpr_gateway.adapters.stepfunctions import StepFunctionsDispatcher, stepfunctions_client
from mpr_gateway.adapters.uploads import S3Uploads, prepare_buckets
from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.jobs import JobService
from mpr_gateway.application.operations import QueueService, WorkerService
from mpr_gateway.application.ports import (
    Presigner,
    Scanner,
    SourceObjects,
    UnitOfWorkFactory,
    UploadStorage,
    WorkerRegistry,
)
from mpr_gateway.application.rate_limit import RateLimit
from mpr_gateway.application.uploads import UploadLimits, UploadService
from mpr_gateway.domain.executors import Executor
from mpr_gateway.metrics import GatewayMetrics
from mpr_gateway.settings import GatewaySettings
from mpr_gateway.subscribers import build_router
from mpr_shared.auth import ApiKeys
from mpr_shared.channel_publisher import ChannelPublisher
from mpr_shared.contracts import (
    CancelJob,
    JobCancelled,
    JobQueued,
    ProcessMedia,
    RegisterObject,
    ScanBucket,
)
from mpr_shared.db import session_factory
from mpr_shared.db.models import GatewayOutbox
from mpr_shared.health import Dependency, Health
from mpr_shared.messaging import make_broker
from mpr_shared.outbox import OutboxPublisher, OutboxRelay
from mpr_shared.topology import COMMANDS, EVENTS, TRANSCODER_JOBS

log = logging.getLogger(__name__)

SERVICE = "gateway"
RELAY_STOP_SECONDS = 10.0
# What the gateway publishes, for AsyncAPI: (exchange, message, description).
PUBLISHED = (
    (COMMANDS, ProcessMedia, "Run a job (outbox; message priority = job priority 0-9)."),
    (COMMANDS, CancelJob, "Stop a job on every transcoder (outbox)."),
    (COMMANDS, ScanBucket, "Scan the input bucket (request/reply; reply is ScanResult)."),
    (COMMANDS, RegisterObject, "Register a completed upload as an asset now (outbox)."),
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
    uploads: UploadService
    # Dispatches the outbox rows of Step Functions jobs; None unless stepfunctions is allowed.
    executor_relay: OutboxRelay | None = None

    @property
    def relays(self) -> tuple[OutboxRelay, ...]:
        return _relays(self.relay, self.executor_relay)


def bootstrap(
    settings: GatewaySettings,
    *,
    uow: UnitOfWorkFactory | None = None,
    presigner: Presigner | None = None,
    sources: SourceObjects | None = None,
    scanner: Scanner | None = None,
    upload_storage: UploadStorage | None = None,
    stepfunctions: Any = None,
    worker_registry: WorkerRegistry | None = None,
) -> Container:
    """The gateway, wired (no I/O); the keyword arguments replace a port's adapter (or the
    boto3 Step Functions client)."""
    db = SqlDatabase(settings.async_database_url, settings.db_pool_size, settings.database_role)
    broker = _broker(settings)
    relay = _relay(settings, db, ChannelPublisher(broker))
    # The Step Functions relay reports a refused job to the job service built below.
    executor_relay = _executor_relay(settings, db, stepfunctions, lambda: jobs)
    relays = _relays(relay, executor_relay)
    metrics = GatewayMetrics()
    metrics.watch_outbox(lambda: max(r.lag_seconds() for r in relays))
    uow = uow or db.unit_of_work
    jobs = JobService(
        uow=uow,
        bucket_in=settings.s3_bucket_in,
        bucket_out=settings.s3_bucket_out,
        presigner=presigner or CachedPresigner(settings, settings.presign_expires_seconds),
        sources=sources or S3Sources(settings),
        wake_relay=_wake_all(relays),
        telemetry=metrics,
        executors=settings.executor_policy,
    )
    assets = AssetService(
        uow=uow,
        scanner=scanner or BrokerScanner(broker, settings.scan_timeout_seconds),
        scan_limit=RateLimit(settings.scan_rate_per_minute, "scan"),
    )
    uploads = UploadService(
        uow=uow,
        storage=upload_storage or S3Uploads(settings),
        bucket=settings.s3_bucket_in,
        limits=_upload_limits(settings),
        wake_relay=relay.wake,
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
        uploads=uploads,
        executor_relay=executor_relay,
    )
    broker.context.set_global("container", container)  # subscribers' Context("container.…")
    return container


def _upload_limits(settings: GatewaySettings) -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        multipart_threshold=settings.upload_multipart_threshold_bytes,
        part_size=settings.upload_part_size_bytes,
        ttl_seconds=settings.upload_ttl_seconds,
        register_wait_seconds=settings.upload_register_timeout_seconds,
    )


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


def _relay(
    settings: GatewaySettings,
    db: SqlDatabase,
    publisher: OutboxPublisher,
    target: Executor = Executor.RABBITMQ,
) -> OutboxRelay:
    """The outbox relay of ``target``'s rows; RabbitMQ's publishes on the channel publisher
    (mpr_shared.channel_publisher)."""
    return OutboxRelay(
        publisher,
        session_factory(db.engine),
        GatewayOutbox,
        poll_interval=settings.outbox_poll_seconds,
        write_lock=db.write_lock,
        rows=GatewayOutbox.target == target.value,
    )


def _relays(relay: OutboxRelay, executor_relay: OutboxRelay | None) -> tuple[OutboxRelay, ...]:
    """Every relay the gateway runs: RabbitMQ's, and Step Functions' when it is allowed."""
    return (relay,) if executor_relay is None else (relay, executor_relay)


def _wake_all(relays: tuple[OutboxRelay, ...]) -> Callable[[], None]:
    def wake() -> None:
        for relay in relays:
            relay.wake()

    return wake


def _executor_relay(
    settings: GatewaySettings,
    db: SqlDatabase,
    client: Any,
    jobs: Callable[[], JobService],
) -> OutboxRelay | None:
    """The Step Functions relay: its own rows and backoff, so an AWS outage never holds up
    what goes to RabbitMQ (mpr_gateway.adapters.stepfunctions)."""
    if Executor.STEPFUNCTIONS not in settings.executor_policy.allowed:
        return None
    assert settings.state_machine_arn and settings.public_url  # the settings require both
    dispatcher = StepFunctionsDispatcher(
        client or stepfunctions_client(settings, settings.stepfunctions_endpoint_url),
        settings.state_machine_arn,
        settings.public_url,
        awaits_start=db.job_awaits_start,
        refused=lambda job_id, attempt, reason: jobs().dispatch_refused(job_id, attempt, reason),
    )
    return _relay(settings, db, dispatcher, Executor.STEPFUNCTIONS)


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
    for relay in container.relays:
        await relay.start()
    sweeping = asyncio.create_task(_sweep_uploads(container), name="gateway-upload-sweep")
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
        await _stop(container, connecting, sweeping)


async def _sweep_uploads(container: Container) -> None:
    """Prepare the buckets for browsers, then abort expired uploads every so often."""
    settings = container.settings
    origins, ttl = settings.cors_origins, settings.upload_ttl_seconds
    await prepare_buckets(settings, origins, ttl)
    while settings.upload_sweep_seconds > 0:
        try:
            await container.uploads.sweep()
        except Exception as exc:  # S3 or the database away: the next round tries again
            log.warning("upload sweep failed: %s", exc)
        await asyncio.sleep(settings.upload_sweep_seconds)


async def _stop(
    container: Container, connecting: asyncio.Task[None], sweeping: asyncio.Task[None]
) -> None:
    for task in (connecting, sweeping):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for relay in container.relays:
        try:
            await asyncio.wait_for(relay.stop(), timeout=RELAY_STOP_SECONDS)
        except Exception as exc:  # pending rows stay in the outbox for the next start
            log.warning("outbox relay did not flush on shutdown: %s", exc)
    with contextlib.suppress(Exception):
        await container.broker.stop()
    if isinstance(container.unacked, ManagementApi):
        await container.unacked.close()
    await container.db.dispose()
