"""The transcoder's one composition point: the broker with its subscribers and documented
publishers (``build_broker``), and the resources of a running replica (``lifespan``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import uvicorn
from faststream import FastStream
from faststream.rabbit import RabbitBroker, RabbitRouter
from faststream.rabbit.annotations import RabbitMessage
from sqlalchemy import text

from mpr_shared import storage
from mpr_shared.contracts import (
    CancelJob,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    ProcessMedia,
)
from mpr_shared.db import create_engine
from mpr_shared.messaging import make_broker, queue_router
from mpr_shared.topology import (
    COMMANDS,
    DEAD_LETTER,
    EVENTS,
    TRANSCODER_JOBS,
    declare_topology,
    live_queue,
)
from mpr_transcoder.broker import BrokerEventPublisher, BrokerRedelivery, RabbitDelivery
from mpr_transcoder.commands import Limits
from mpr_transcoder.core import CoreConfig, JobCore
from mpr_transcoder.ffmpeg_runner import SubprocessRunner
from mpr_transcoder.health import Metrics, build_health_app, ffmpeg_check
from mpr_transcoder.job_state import SqlJobStateReader
from mpr_transcoder.s3 import S3Storage
from mpr_transcoder.settings import TranscoderSettings
from mpr_transcoder.worker import JobWorker, WorkerConfig
from mpr_transcoder.workspace import Workspace, new_instance_id

log = logging.getLogger(__name__)
SERVICE = "transcoder"


class Runtime:
    """What the subscribers need at run time; filled in by ``lifespan`` (or by a test)."""

    def __init__(self, settings: TranscoderSettings, instance: str | None = None) -> None:
        self.settings = settings
        self.instance = instance or settings.instance_id or new_instance_id()
        self.metrics = Metrics()
        self.worker: JobWorker | None = None

    def require_worker(self) -> JobWorker:
        if self.worker is None:
            raise RuntimeError("the transcoder is not started")
        return self.worker


def build_router(runtime: Runtime) -> RabbitRouter:
    """Subscribers (thin: parse, call the worker, map the outcome) and publishers."""
    cancel_queue = live_queue(SERVICE, runtime.instance, CancelJob.ROUTING_KEY)
    jobs, cancels = queue_router(TRANSCODER_JOBS), queue_router(cancel_queue)
    router = RabbitRouter(routers=(jobs, cancels))

    @jobs.subscriber(TRANSCODER_JOBS, COMMANDS, title="transcoder:ProcessMedia")
    async def on_process_media(job: ProcessMedia, message: RabbitMessage) -> None:
        """Run one media job (prefetch 1 per replica); acked when its result is confirmed."""
        worker = runtime.require_worker()
        started = time.monotonic()
        runtime.metrics.running.inc()
        try:
            outcome = await worker.handle(job, RabbitDelivery(message))
        except asyncio.CancelledError:
            # aio-pika cancels in-flight handlers when their channel or connection closes:
            # the delivery went back to the queue and FFmpeg was killed on the way out.
            runtime.metrics.jobs.labels("lost").inc()
            raise
        finally:
            runtime.metrics.running.dec()
        runtime.metrics.jobs.labels(outcome).inc()
        runtime.metrics.seconds.labels(outcome).observe(time.monotonic() - started)

    @cancels.subscriber(cancel_queue, COMMANDS, title="transcoder:CancelJob")
    async def on_cancel(command: CancelJob) -> None:
        """Every replica hears every cancel: skip the job if queued, kill it if running here."""
        log.info("cancel %s for job %s", command.id, command.job_id)
        runtime.require_worker().cancel(command)

    for event in (JobStarted, JobProgress, JobCompleted, JobFailed, JobCancelled):
        router.publisher(
            exchange=EVENTS,
            routing_key=event.ROUTING_KEY,
            schema=event,
            title=f"transcoder:{event.__name__}",
            description=event.__doc__,
        )
    router.publisher(
        exchange=COMMANDS,
        routing_key=ProcessMedia.ROUTING_KEY,
        schema=ProcessMedia,
        title="transcoder:ProcessMedia:retry",
        description="A job republished with its x-mpr-deliveries header raised.",
    )
    router.publisher(
        exchange=DEAD_LETTER,
        routing_key=TRANSCODER_JOBS.name,
        schema=ProcessMedia,
        title="transcoder:ProcessMedia:dead-letter",
        description="A job that failed MAX_DELIVERIES times, with the reason in x-mpr-error.",
    )
    return router


def build_broker(settings: TranscoderSettings, runtime: Runtime | None = None) -> RabbitBroker:
    """The broker with every subscriber and publisher registered; not connected."""
    broker = make_broker(
        settings.amqp_url.get_secret_value(),
        service=SERVICE,
        # One job at a time per replica: the others stay in the queue for idle replicas.
        # https://www.rabbitmq.com/docs/consumer-prefetch
        prefetch=1,
        graceful_timeout=settings.shutdown_grace_seconds + 15,
    )
    broker.include_router(build_router(runtime or Runtime(settings)))
    return broker


def core_config(settings: TranscoderSettings, scratch) -> CoreConfig:
    return CoreConfig(
        scratch=scratch,
        limits=Limits(
            max_output_height=settings.max_output_height,
            threads=settings.ffmpeg_threads,
            duration_tolerance=settings.duration_tolerance_seconds,
        ),
        input_mode=settings.input_mode,
        max_input_bytes=settings.max_input_bytes,
        max_duration_seconds=settings.max_duration_seconds,
        ffmpeg_binary=settings.ffmpeg_binary,
        url_expiry_seconds=int(settings.max_job_seconds + 600),
    )


@contextlib.asynccontextmanager
async def lifespan(runtime: Runtime, broker: RabbitBroker) -> AsyncIterator[None]:
    """Build the replica's resources after the broker connects; release them at the end."""
    settings = runtime.settings
    await broker.connect()
    await declare_topology(broker, settings)
    workspace = Workspace(settings.work_dir, runtime.instance).open()
    engine = create_engine(settings.database_url.get_secret_value())
    s3_client = storage.get_s3_client(settings)
    publisher = BrokerEventPublisher(broker)
    core = JobCore(
        config=core_config(settings, workspace.path),
        storage=S3Storage(s3_client),
        runner=SubprocessRunner(settings.ffprobe_binary),
        publisher=publisher,
        worker=runtime.instance,
    )
    runtime.worker = JobWorker(
        core=core,
        publisher=publisher,
        state=SqlJobStateReader(engine),
        redelivery=BrokerRedelivery(broker),
        config=WorkerConfig(
            max_deliveries=settings.max_deliveries,
            max_job_seconds=settings.max_job_seconds,
            retry_backoff_seconds=settings.retry_backoff_seconds,
        ),
    )
    health = None
    if settings.health_port:

        async def database() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        async def s3() -> None:
            await asyncio.to_thread(s3_client.head_bucket, Bucket=settings.s3_bucket_out)

        async def rabbitmq() -> None:
            if not await broker.ping(timeout=2):
                raise RuntimeError("no connection")

        checks = {
            "rabbitmq": rabbitmq,
            "database": database,
            "s3": s3,
            "ffmpeg": ffmpeg_check(settings.ffmpeg_binary, settings.ffprobe_binary),
        }
        health = await _serve(build_health_app(runtime.metrics, checks), settings)
    log.info("transcoder %s ready (work dir %s)", runtime.instance, workspace.path)
    try:
        yield
    finally:
        if health is not None:
            server, task = health
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        await engine.dispose()
        workspace.close()


async def _serve(app, settings: TranscoderSettings):
    config = uvicorn.Config(
        app,
        host=settings.health_host,
        port=settings.health_port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.05)
    if task.done():
        task.result()  # raises the bind error
    return server, task


def build_app(settings: TranscoderSettings) -> FastStream:
    """The runnable replica: SIGTERM/SIGINT drain the running job, then the broker stops."""
    runtime = Runtime(settings)
    broker = build_broker(settings, runtime)

    @contextlib.asynccontextmanager
    async def app_lifespan() -> AsyncIterator[None]:
        async with lifespan(runtime, broker):
            yield

    async def drain() -> None:
        if runtime.worker is not None:
            await runtime.worker.drain(settings.shutdown_grace_seconds)

    return FastStream(broker, lifespan=app_lifespan, on_shutdown=[drain])
