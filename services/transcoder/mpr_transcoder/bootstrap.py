"""The transcoder's composition root.

- ``bootstrap(settings, **overrides)`` builds a replica's adapters and application objects
  once, without I/O (``make docs`` reads ``bootstrap(settings).broker``); tests pass fakes for
  ports as keyword arguments.
- ``running(container)`` connects, declares the topology, opens the work dir, serves health,
  starts consuming and sweeps old incomplete uploads; on exit the running job is drained
  first, then everything stops in reverse.
- ``serve(container)`` runs a replica until SIGTERM or SIGINT, or until it has been idle for
  TRANSCODER_IDLE_EXIT_SECONDS (``python -m mpr_transcoder``).
- ``bootstrap_lambda`` builds the same job core for the Lambda executor: no broker, no
  database, events to the gateway's callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING

from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from mpr_shared.db import engine_for
from mpr_shared.health import Dependency, Health, serving
from mpr_shared.messaging import make_broker
from mpr_shared.multipart_sweeper import UploadSweeper
from mpr_shared.storage import get_s3_client
from mpr_shared.topology import declare_topology
from mpr_transcoder.adapters.broker import BrokerEventPublisher, BrokerRedelivery
from mpr_transcoder.adapters.db import SqlJobRows
from mpr_transcoder.adapters.ffmpeg import SubprocessRunner, ffmpeg_version
from mpr_transcoder.adapters.s3 import S3Storage
from mpr_transcoder.adapters.workspace import Workspace, new_instance_id
from mpr_transcoder.application.heartbeat import Heartbeat, Replica
from mpr_transcoder.application.job_core import CoreConfig, JobCore
from mpr_transcoder.application.ports import EventPublisher, FFmpegRunner, JobRows, Storage
from mpr_transcoder.application.worker import JobWorker, WorkerConfig
from mpr_transcoder.domain.ffmpeg_args import Limits
from mpr_transcoder.metrics import Metrics
from mpr_transcoder.settings import TranscoderSettings
from mpr_transcoder.subscribers import SERVICE, Consumer, build_router

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Container:
    """Everything one replica is made of, built once by ``bootstrap``."""

    settings: TranscoderSettings
    instance: str
    broker: RabbitBroker
    job_consumer: Consumer
    engine: AsyncEngine
    workspace: Workspace
    worker: JobWorker
    metrics: Metrics
    health: Health
    upload_sweeper: UploadSweeper
    heartbeat: Heartbeat


@dataclass(frozen=True, slots=True)
class LambdaContainer:
    """The Lambda executor: the job core with S3, FFmpeg and the gateway's callback."""

    settings: TranscoderSettings
    core: JobCore


def bootstrap(
    settings: TranscoderSettings,
    *,
    instance: str | None = None,
    storage: Storage | None = None,
    runner: FFmpegRunner | None = None,
    rows: JobRows | None = None,
) -> Container:
    """A replica's objects, wired; the ports default to the real adapters."""
    instance = instance or settings.instance_id or new_instance_id()
    broker = _broker(settings)
    router, job_consumer = build_router(instance)
    broker.include_router(router)
    real = _Adapters(settings, engine_for(settings))
    workspace = Workspace(settings.work_dir, instance)
    metrics = Metrics()
    publisher = BrokerEventPublisher(broker)
    core = JobCore(
        config=_core_config(settings, workspace.path),
        storage=storage or real.storage,
        runner=runner or real.runner,
        publisher=publisher,
        metrics=metrics,
        worker=instance,
    )
    worker = JobWorker(
        core=core,
        publisher=publisher,
        rows=rows or real.rows,
        redelivery=BrokerRedelivery(broker),
        config=_worker_config(settings),
    )
    container = Container(
        settings=settings,
        instance=instance,
        broker=broker,
        job_consumer=job_consumer,
        engine=real.engine,
        workspace=workspace,
        worker=worker,
        metrics=metrics,
        health=Health(SERVICE, real.dependencies(broker), metrics.registry),
        upload_sweeper=real.upload_sweeper(),
        heartbeat=_heartbeat(settings, instance, publisher, worker),
    )
    broker.context.set_global("container", container)
    return container


def bootstrap_lambda(
    settings: TranscoderSettings,
    *,
    publisher: EventPublisher,
    executor: str,
    scratch: Path,
    storage: Storage | None = None,
    runner: FFmpegRunner | None = None,
) -> LambdaContainer:
    """The Lambda executor's job core, reporting through ``publisher`` as ``executor``."""
    core = JobCore(
        config=_core_config(settings, scratch),
        storage=storage or S3Storage(_s3_client(settings)),
        runner=runner or SubprocessRunner(settings.ffmpeg_binary, settings.ffprobe_binary),
        publisher=publisher,
        metrics=Metrics(),  # not served: a Lambda has no /metrics
        worker=executor,
    )
    return LambdaContainer(settings, core)


class _Adapters:
    """The real adapters a replica's ports default to, and its readiness checks."""

    def __init__(self, settings: TranscoderSettings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.storage = S3Storage(_s3_client(settings))
        self.runner = SubprocessRunner(settings.ffmpeg_binary, settings.ffprobe_binary)
        self.rows = SqlJobRows(engine)

    def upload_sweeper(self) -> UploadSweeper:
        ttl = timedelta(seconds=self.settings.multipart_upload_ttl_seconds)
        return UploadSweeper(self.storage.client, self.settings.s3_bucket_out, ttl)

    def dependencies(self, broker: RabbitBroker) -> list[Dependency]:
        """rabbitmq, s3 and ffmpeg are critical; the database is not (the worker fails open)."""

        async def rabbitmq() -> None:
            if not await broker.ping(timeout=2):
                raise ConnectionError("no connection to RabbitMQ")

        async def s3() -> None:
            await self.storage.check_bucket(self.settings.s3_bucket_out)

        return [
            Dependency("rabbitmq", rabbitmq, critical=True),
            Dependency("s3", s3, critical=True),
            Dependency("ffmpeg", self.runner.check, critical=True),
            Dependency("database", self.rows.ping, critical=False),
        ]


def _heartbeat(
    settings: TranscoderSettings, instance: str, publisher: EventPublisher, worker: JobWorker
) -> Heartbeat:
    replica = Replica(
        worker=instance,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=_version(),
        started_at=datetime.now(UTC),
    )
    return Heartbeat(
        replica=replica,
        publisher=publisher,
        current_job=worker.current_job,
        ffmpeg_version=lambda: ffmpeg_version(settings.ffmpeg_binary),
        interval=settings.worker_heartbeat_seconds,
    )


def _version() -> str:
    try:
        return package_version("mpr-transcoder")
    except PackageNotFoundError:
        return "unknown"


def _s3_client(settings: TranscoderSettings) -> S3Client:
    return get_s3_client(settings)


def _broker(settings: TranscoderSettings) -> RabbitBroker:
    return make_broker(
        settings.amqp_url.get_secret_value(),
        service=SERVICE,
        # One job at a time per replica: the others stay in the queue for idle replicas.
        # https://www.rabbitmq.com/docs/consumer-prefetch
        prefetch=1,
        # Stopping a subscriber must cancel its consumer at once: `_drain` does the waiting.
        graceful_timeout=None,
    )


def _core_config(settings: TranscoderSettings, scratch: Path) -> CoreConfig:
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


def _worker_config(settings: TranscoderSettings) -> WorkerConfig:
    return WorkerConfig(
        max_deliveries=settings.max_deliveries,
        max_job_seconds=settings.max_job_seconds,
        retry_backoff_seconds=settings.retry_backoff_seconds,
    )


@contextlib.asynccontextmanager
async def running(container: Container) -> AsyncIterator[Container]:
    """The replica at work while the block runs; its job drained and everything stopped after."""
    settings = container.settings
    async with contextlib.AsyncExitStack() as stack:
        container.workspace.open()
        stack.callback(container.workspace.close)
        stack.push_async_callback(container.engine.dispose)
        await container.broker.connect()
        stack.push_async_callback(container.broker.stop)
        await declare_topology(container.broker, settings)
        if settings.health_port:
            health = serving(container.health.app(), settings.health_host, settings.health_port)
            await stack.enter_async_context(health)
        await container.broker.start()
        beating = asyncio.create_task(container.heartbeat.run(), name="worker-heartbeat")
        stack.push_async_callback(_stop_heartbeat, container, beating)  # after the drain
        stack.push_async_callback(_drain, container)
        sweeping = asyncio.create_task(_sweep_uploads(container), name="upload-sweeper")
        stack.callback(sweeping.cancel)
        log.info("transcoder %s ready (work dir %s)", container.instance, container.workspace.path)
        yield container


async def _sweep_uploads(container: Container) -> None:
    """The output bucket's lifecycle rule once, then a sweep now and every interval."""
    await container.upload_sweeper.expire_by_rule()
    interval = container.settings.multipart_sweep_interval_seconds
    while True:
        await container.upload_sweeper.sweep()
        if not interval:
            return
        await asyncio.sleep(interval)


async def _stop_heartbeat(container: Container, beating: asyncio.Task[None]) -> None:
    """Stop beating and say WorkerStopped (while the broker is still connected)."""
    beating.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await beating
    await container.heartbeat.stopped("replica shut down")


async def _drain(container: Container) -> None:
    """Stop consuming jobs (basic.cancel), then finish or hand back the running one."""
    await container.job_consumer.stop()
    await container.worker.drain(container.settings.shutdown_grace_seconds)


async def serve(container: Container) -> None:
    """Run the replica until SIGTERM, SIGINT or the idle limit, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(container):
        reason = await _until_stopped(container, stop)
        log.info("transcoder %s: shutting down (%s)", container.instance, reason)


async def _until_stopped(container: Container, stop: asyncio.Event) -> str:
    """Why the replica stops: a signal, or TRANSCODER_IDLE_EXIT_SECONDS without a job."""
    limit = container.settings.idle_exit_seconds
    while True:
        left = limit - container.worker.idle_seconds() if limit else None
        try:
            await asyncio.wait_for(stop.wait(), None if left is None else max(left, 0.1))
        except TimeoutError:
            if container.worker.idle_seconds() >= limit:
                return f"no job for {limit:g}s"
        else:
            return "signal"
