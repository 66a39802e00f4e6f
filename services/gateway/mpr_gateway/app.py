"""The gateway's one composition point: settings → adapters → services → FastAPI app + broker.

``create_app(settings)`` returns the ASGI app; its lifespan opens the database engine,
connects the broker (declaring the topology), starts the outbox relay and the consumers, and
tears them down in reverse. ``build_broker(settings)`` registers every subscriber and
documented publisher without connecting, for AsyncAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpr_gateway.adapters.broker import BrokerProbe, BrokerScanner
from mpr_gateway.adapters.callbacks import CallbackVerifier
from mpr_gateway.adapters.sql import SqlDatabase, SqlUnitOfWork, ping
from mpr_gateway.adapters.storage import CachedPresigner, S3Probe, S3Sources
from mpr_gateway.api.auth import ApiKeys
from mpr_gateway.api.errors import install_error_handlers
from mpr_gateway.api.limits import BodySizeLimit
from mpr_gateway.api.openapi import install_openapi
from mpr_gateway.api.routes import assets, health, jobs, presets
from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.jobs import JobService
from mpr_gateway.application.ports import Probe
from mpr_gateway.consumers import make_router
from mpr_gateway.graphql.app import GatewayGraphQL
from mpr_gateway.metrics import GatewayMetrics, MetricsMiddleware
from mpr_gateway.settings import GatewaySettings
from mpr_shared.channel_publisher import ChannelPublisher
from mpr_shared.contracts import CancelJob, JobCancelled, JobQueued, ProcessMedia, ScanBucket
from mpr_shared.db import session_factory
from mpr_shared.db.models import GatewayOutbox
from mpr_shared.messaging import make_broker
from mpr_shared.outbox import OutboxRelay
from mpr_shared.topology import COMMANDS, EVENTS, declare_topology

log = logging.getLogger(__name__)

SERVICE = "gateway"
RECONNECT_SECONDS = 5.0


@dataclass
class Gateway:
    """Everything a request or a message handler needs, built once per process."""

    settings: GatewaySettings
    db: SqlDatabase
    sessions: async_sessionmaker[AsyncSession]
    broker: RabbitBroker
    relay: OutboxRelay
    jobs: JobService
    assets: AssetService
    api_keys: ApiKeys
    callbacks: CallbackVerifier
    metrics: GatewayMetrics
    probes: list[Probe]


class _DatabaseProbe:
    name = "database"

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def check(self) -> None:
        await ping(self._sessions)


def build_broker(
    settings: GatewaySettings, jobs: Callable[[], JobService] | None = None
) -> RabbitBroker:
    """The gateway's broker: its subscribers and documented publishers, not yet connected."""
    broker = make_broker(
        settings.amqp_url.get_secret_value(), service=SERVICE, prefetch=settings.event_prefetch
    )
    broker.include_router(make_router(jobs or _not_started))
    for exchange, message, description in (
        (COMMANDS, ProcessMedia, "Run a job (outbox; message priority = job priority 0-9)."),
        (COMMANDS, CancelJob, "Stop a job on every transcoder (outbox)."),
        (COMMANDS, ScanBucket, "Scan the input bucket (request/reply; reply is ScanResult)."),
        (EVENTS, JobQueued, "A job was accepted (outbox)."),
        (EVENTS, JobCancelled, "A queued job was cancelled before it ran (outbox)."),
    ):
        broker.publisher(
            exchange=exchange,
            routing_key=message.ROUTING_KEY,
            schema=message,
            title=f"gateway.{message.ROUTING_KEY}",
            description=description,
        )
    return broker


def _not_started() -> JobService:
    raise RuntimeError("the gateway's services are built in create_app's lifespan")


def build_gateway(settings: GatewaySettings, metrics: GatewayMetrics) -> Gateway:
    """Wire adapters into services (no I/O yet)."""
    db = SqlDatabase(settings.async_database_url, settings.db_pool_size)
    sessions = session_factory(db.engine)
    holder: list[JobService] = []
    broker = build_broker(settings, lambda: holder[0])
    relay = OutboxRelay(
        ChannelPublisher(broker),
        sessions,
        GatewayOutbox,
        poll_interval=settings.outbox_poll_seconds,
        write_lock=db.write_lock,
    )
    job_service = JobService(
        uow=lambda: SqlUnitOfWork(db),
        bucket_in=settings.s3_bucket_in,
        bucket_out=settings.s3_bucket_out,
        presigner=CachedPresigner(settings, settings.presign_expires_seconds),
        sources=S3Sources(settings),
        wake_relay=relay.wake,
        telemetry=metrics,
    )
    holder.append(job_service)
    secret = settings.callback_secret.get_secret_value() if settings.callback_secret else None
    return Gateway(
        settings=settings,
        db=db,
        sessions=sessions,
        broker=broker,
        relay=relay,
        jobs=job_service,
        assets=AssetService(
            uow=lambda: SqlUnitOfWork(db),
            scanner=BrokerScanner(broker, settings.scan_timeout_seconds),
        ),
        api_keys=ApiKeys(settings.api_key_map),
        callbacks=CallbackVerifier(secret),
        metrics=metrics,
        probes=[BrokerProbe(broker), _DatabaseProbe(sessions), S3Probe(settings)],
    )


async def _connect(gateway: Gateway) -> None:
    """Connect, declare the topology and start consuming; retried until RabbitMQ answers."""
    await gateway.broker.connect()
    await declare_topology(gateway.broker, gateway.settings)
    await gateway.broker.start()
    log.info("connected to RabbitMQ; consuming job events and job requests")


async def _keep_connecting(gateway: Gateway) -> None:
    while True:
        try:
            await _connect(gateway)
            return
        except Exception as exc:
            log.warning("RabbitMQ unreachable (%s); retrying in %gs", exc, RECONNECT_SECONDS)
            with contextlib.suppress(Exception):
                await gateway.broker.stop()
            await asyncio.sleep(RECONNECT_SECONDS)


@contextlib.asynccontextmanager
async def _running(gateway: Gateway) -> AsyncIterator[None]:
    """Start-up and shutdown. Jobs are accepted even while RabbitMQ is down: they wait in the
    outbox and the relay publishes them once the broker is back."""
    connecting = asyncio.create_task(_keep_connecting(gateway), name="gateway-broker-connect")
    wait = gateway.settings.broker_startup_wait_seconds
    done, _ = await asyncio.wait({connecting}, timeout=wait)
    if not done:
        log.warning("starting without RabbitMQ; jobs wait in the outbox until it is reachable")
    await gateway.relay.start()
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
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        try:
            await asyncio.wait_for(gateway.relay.stop(), timeout=10)
        except Exception as exc:  # pending rows stay in the outbox for the next start
            log.warning("outbox relay did not flush on shutdown: %s", exc)
        with contextlib.suppress(Exception):
            await gateway.broker.stop()
        await gateway.db.dispose()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway's ASGI app; resources are created in its lifespan, not here."""
    settings = settings or GatewaySettings()
    metrics = GatewayMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = build_gateway(settings, metrics)
        app.state.gateway = gateway
        async with _running(gateway):
            yield

    app = FastAPI(
        title="MPR gateway",
        version="1.0.0",
        summary="Register media in S3 and run FFmpeg jobs on it.",
        description="REST and GraphQL (/graphql) over the same application layer. Send an API "
        "key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Lists use keyset "
        "pagination: pass `next_cursor` back as `cursor`.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    for router in (assets.router, jobs.router, presets.router, health.router):
        app.include_router(router)
    graphql = GatewayGraphQL(settings.graphql_max_depth, settings.graphql_max_complexity)
    app.add_route("/graphql", graphql, methods=["GET", "POST"], include_in_schema=False)
    # Outermost first: metrics see every response, including the body limit's 413.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
