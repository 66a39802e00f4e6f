"""The catalog's one composition point: broker, subscribers, adapters and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from faststream import ContextRepo, FastStream
from faststream.rabbit import RabbitBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mpr_catalog.adapters.db import unit_of_work_factory
from mpr_catalog.adapters.ffprobe import FfprobeProber
from mpr_catalog.adapters.s3 import Presigner, S3ObjectLister
from mpr_catalog.handlers import build_router
from mpr_catalog.health import health_app
from mpr_catalog.metrics import Metrics
from mpr_catalog.probe import ProbeOutcome
from mpr_catalog.probing import ProbeScheduler
from mpr_catalog.services import Catalog
from mpr_catalog.settings import CatalogSettings, get_settings
from mpr_shared import storage
from mpr_shared.contracts import ASSET_EVENTS, CreateJob
from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.models import CatalogOutbox
from mpr_shared.messaging import make_broker
from mpr_shared.outbox import BrokerPublisher, OutboxRelay
from mpr_shared.topology import COMMANDS, EVENTS, declare_topology

log = logging.getLogger(__name__)


def build_broker(settings: CatalogSettings) -> RabbitBroker:
    """The broker with every subscriber and a documented publisher per message sent; unconnected."""
    broker = make_broker(settings.amqp_url.get_secret_value(), service="catalog")
    broker.include_router(build_router(settings))
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


@dataclass
class Runtime:
    """Everything the catalog runs besides its subscribers; built and started in lifespan."""

    settings: CatalogSettings
    broker: RabbitBroker
    metrics: Metrics = field(default_factory=Metrics)
    engine: AsyncEngine | None = None
    catalog: Catalog | None = None
    relay: OutboxRelay | None = None
    probes: ProbeScheduler | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _http: uvicorn.Server | None = None
    _running: bool = False

    def build(self) -> Catalog:
        s = self.settings
        self.engine = create_engine(s.database_url.get_secret_value())
        sessions = session_factory(self.engine)
        self.relay = OutboxRelay(
            BrokerPublisher(self.broker),
            sessions,
            CatalogOutbox,
            poll_interval=s.outbox_poll_seconds,
        )
        s3 = storage.get_s3_client(s)
        self.catalog = Catalog(
            uow=unit_of_work_factory(sessions, on_commit=self.relay.wake),
            lister=S3ObjectLister(s3),
            prober=FfprobeProber(Presigner(s3).url, timeout=s.probe_timeout_seconds),
            bucket=s.s3_bucket_in,
            auto_preset=s.auto_transcode_preset,
            batch_size=s.scan_batch_size,
        )
        self.probes = ProbeScheduler(
            self.catalog.probe,
            concurrency=s.probe_concurrency,
            attempts=s.probe_attempts,
            on_result=self._probed,
        )
        self.catalog.probes = self.probes
        return self.catalog

    def _probed(self, outcome: ProbeOutcome | None) -> None:
        if outcome is not None:
            self.metrics.probes.labels(outcome.status.value).inc()
        if self.probes:
            self.metrics.probe_backlog.set(self.probes.backlog)

    async def start(self) -> None:
        """Start after the broker connected: relay, probes (resuming pending), reconcile, HTTP."""
        assert self.catalog and self.relay and self.probes
        self._running = True
        await self.relay.start()
        await self.probes.start()
        pending = await self.catalog.pending_probes()
        if pending:
            log.info("resuming %d pending probes", len(pending))
        self.probes.submit(pending)
        if self.settings.scan_interval_seconds > 0:
            self._tasks.append(asyncio.create_task(self._reconcile(), name="reconcile"))
        if self.settings.health_port:
            self._tasks.append(asyncio.create_task(self._serve_http(), name="health-http"))

    async def stop(self) -> None:
        """Stop background work while the broker is still connected (the relay flushes)."""
        if not self._running:
            return
        self._running = False
        if self._http:
            self._http.should_exit = True
        for task in self._tasks:
            if task.get_name() != "health-http":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.probes:
            await self.probes.stop()
        if self.relay:
            try:
                await self.relay.stop()  # and flush what the last handlers committed
            except Exception:
                log.exception("outbox relay: final flush failed; rows stay pending until restart")

    async def close(self) -> None:
        if self.engine:
            await self.engine.dispose()

    async def _reconcile(self) -> None:
        """Full scan every SCAN_INTERVAL_SECONDS: catches missed events and vanished objects."""
        assert self.catalog and self.probes
        while True:
            try:
                await self.catalog.scan(remove_missing=True)
                self.metrics.scans.labels("reconcile").inc()
                self.probes.submit(await self.catalog.pending_probes())
            except Exception:
                log.exception(
                    "reconcile scan failed; trying again in %gs",
                    self.settings.scan_interval_seconds,
                )
            await asyncio.sleep(self.settings.scan_interval_seconds)

    async def _serve_http(self) -> None:
        s = self.settings
        checks = {"database": self._check_db, "broker": self._check_broker, "s3": self._check_s3}
        config = uvicorn.Config(
            health_app(checks, self.metrics.registry),
            host=s.health_host,
            port=s.health_port or 0,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._http = uvicorn.Server(config)
        # uvicorn would install its own SIGINT/SIGTERM handlers; FastStream owns them here.
        self._http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        await self._http.serve()

    async def _check_db(self) -> None:
        assert self.engine
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def _check_broker(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("RabbitMQ does not answer")

    async def _check_s3(self) -> None:
        client = storage.get_s3_client(self.settings)
        await asyncio.to_thread(client.head_bucket, Bucket=self.settings.s3_bucket_in)


@contextlib.asynccontextmanager
async def _resources(
    settings: CatalogSettings, broker: RabbitBroker, runtime: Runtime, context: ContextRepo
) -> AsyncIterator[None]:
    """Build adapters, connect, declare the topology and start background work."""
    context.set_global("catalog", runtime.build())
    context.set_global("metrics", runtime.metrics)
    try:
        await broker.connect()
        await declare_topology(broker, settings)
        await runtime.start()
        yield
    finally:
        try:
            await runtime.stop()  # a no-op unless startup failed half-way
        except Exception:
            log.exception("stopping after a failed startup")
        await runtime.close()


def create_app(settings: CatalogSettings | None = None) -> FastStream:
    """The FastStream app run by ``python -m mpr_catalog``."""
    settings = settings or get_settings()
    broker = build_broker(settings)
    runtime = Runtime(settings, broker)

    @contextlib.asynccontextmanager
    async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
        async with _resources(settings, broker, runtime, context):
            yield

    app = FastStream(broker, lifespan=lifespan, logger=log)
    # on_shutdown runs before the broker disconnects, so the relay can still publish.
    app.on_shutdown(runtime.stop)
    return app


@contextlib.asynccontextmanager
async def running(settings: CatalogSettings) -> AsyncIterator[Runtime]:
    """The whole catalog running in this event loop (integration tests and benchmarks)."""
    broker = build_broker(settings)
    runtime = Runtime(settings, broker)
    async with _resources(settings, broker, runtime, broker.context):
        await broker.start()
        try:
            yield runtime
        finally:
            await runtime.stop()
            await broker.stop()
