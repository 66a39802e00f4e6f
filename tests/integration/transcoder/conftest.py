"""Fixtures for the transcoder against real RabbitMQ, S3, SQLite and FFmpeg."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import pytest

from mpr_shared.contracts import (
    EVENTS_BY_ROUTING_KEY,
    CancelJob,
    Event,
    JobSpec,
    ProcessMedia,
)
from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.migrate import upgrade
from mpr_shared.db.models import Job
from mpr_shared.messaging import make_broker, send_command
from mpr_shared.topology import EVENTS, TRANSCODER_JOBS, declare_topology
from mpr_transcoder.bootstrap import Container, bootstrap, running
from mpr_transcoder.settings import TranscoderSettings
from tests.support.media import ffprobe as probe_json  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def transcoder_env(service_env: dict, tmp_path: Path) -> dict:
    """The service env plus the transcoder's own settings; the SQLite file is migrated."""
    upgrade(service_env["DATABASE_URL"])
    return {
        **service_env,
        "TRANSCODER_WORK_DIR": str(tmp_path / "work"),
        "SHUTDOWN_GRACE_SECONDS": "2",
        "MAX_DELIVERIES": "3",
        "RETRY_BACKOFF_SECONDS": "0.1",
        "LOG_LEVEL": "INFO",
    }


class EventTap:
    """Every job.* event on mpr.events, as the contracts' models, in arrival order."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.events: list[Event] = []
        self._arrived = asyncio.Condition()

    async def __aenter__(self) -> EventTap:
        self.connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            EVENTS.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="job.*")
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        model = EVENTS_BY_ROUTING_KEY[message.routing_key]
        event = model.model_validate_json(message.body)
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def of(self, job_id: UUID, kind: type[Event] | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if getattr(e, "job_id", None) == job_id and (kind is None or isinstance(e, kind))
        ]

    async def wait_for(
        self, job_id: UUID, kind: type[Event] | tuple[type[Event], ...], timeout: float = 120
    ) -> Event:
        def found() -> Event | None:
            return next(
                (
                    e
                    for e in self.events
                    if getattr(e, "job_id", None) == job_id and isinstance(e, kind)
                ),
                None,
            )

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
            return found()


@pytest.fixture
async def tap(amqp_url: str) -> AsyncIterator[EventTap]:
    async with EventTap(amqp_url) as event_tap:
        yield event_tap


@pytest.fixture
async def client_broker(amqp_url: str, transcoder_env: dict):
    """A broker for the test itself (the gateway's role): topology declared, queue purged."""
    broker = make_broker(amqp_url, service="transcoder-test")
    await broker.connect()
    await declare_topology(broker, TranscoderSettings(**transcoder_env))
    await purge(amqp_url)
    yield broker
    await broker.stop()


async def purge(amqp_url: str) -> None:
    """Empty the job queue and its DLQ (other tests in the session share the vhost)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in (TRANSCODER_JOBS.name, TRANSCODER_JOBS.name + ".dlq"):
            queue = await channel.get_queue(name, ensure=False)
            await queue.purge()


async def queue_depths(amqp_url: str) -> dict[str, int]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        depths = {}
        for name in (TRANSCODER_JOBS.name, TRANSCODER_JOBS.name + ".dlq"):
            queue = await channel.declare_queue(name, passive=True)
            depths[name] = queue.declaration_result.message_count
        return depths


class Jobs:
    """Creates job rows (the gateway's part) and the ProcessMedia commands for them."""

    def __init__(self, env: dict, broker) -> None:
        self.env = env
        self.broker = broker
        self.engine = create_engine(env["DATABASE_URL"])
        self.sessions = session_factory(self.engine)

    def command(
        self, source_key: str, output_key: str | None = None, *, duration=None, **spec: Any
    ) -> ProcessMedia:
        job_id = uuid4()
        kind = spec.get("kind", "transcode")
        stem = source_key.rsplit(".", 1)[0]
        default = f"{stem}/{job_id}/" + ("" if kind == "hls" else f"{spec.get('preset') or kind}")
        return ProcessMedia(
            job_id=job_id,
            correlation_id=str(job_id),
            source_bucket=self.env["S3_BUCKET_IN"],
            source_key=source_key,
            source_duration=duration,
            spec=JobSpec(**spec),
            output_bucket=self.env["S3_BUCKET_OUT"],
            output_key=output_key or default,
        )

    async def submit(self, job: ProcessMedia, *, status: str = "queued") -> ProcessMedia:
        async with self.sessions.begin() as session:
            session.add(
                Job(
                    id=job.job_id,
                    source_bucket=job.source_bucket,
                    source_key=job.source_key,
                    kind=str(job.spec.kind),
                    preset=job.spec.preset,
                    spec=job.spec.model_dump(mode="json"),
                    output_bucket=job.output_bucket,
                    output_key=job.output_key,
                    priority=job.priority,
                    status=status,
                    attempt=job.attempt,
                )
            )
        await send_command(self.broker, job, priority=job.priority)
        return job

    async def cancel(self, job_id: UUID) -> None:
        await send_command(self.broker, CancelJob(job_id=job_id, correlation_id=str(job_id)))

    async def set_status(self, job_id: UUID, status: str) -> None:
        async with self.sessions.begin() as session:
            (await session.get(Job, job_id)).status = status


@pytest.fixture
async def jobs(transcoder_env: dict, client_broker) -> AsyncIterator[Jobs]:
    helper = Jobs(transcoder_env, client_broker)
    yield helper
    await helper.engine.dispose()


@contextlib.asynccontextmanager
async def running_replica(env: dict) -> AsyncIterator[Container]:
    """One transcoder replica in this process, as `python -m mpr_transcoder` composes it."""
    async with running(bootstrap(TranscoderSettings(**env))) as container:
        yield container


def jobs_total(container: Container, outcome: str) -> float:
    """How many deliveries ``container`` handled with ``outcome`` (its /metrics counter)."""
    registry = container.metrics.registry
    return registry.get_sample_value("mpr_transcoder_jobs_total", {"outcome": outcome}) or 0.0


@pytest.fixture
async def replica(transcoder_env: dict, client_broker) -> AsyncIterator[Container]:
    async with running_replica(transcoder_env) as container:
        yield container


class Replica:
    """``python -m mpr_transcoder`` as a subprocess with the test's environment."""

    def __init__(self, env: dict, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mpr_transcoder"],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            cwd=ROOT,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited early:\n{self.output()}")
            if "ready (work dir" in self.output():
                time.sleep(0.5)  # the consumers start right after the lifespan
                return
            time.sleep(0.1)
        raise RuntimeError(f"replica not ready:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def spawn(transcoder_env: dict, tmp_path: Path) -> Iterator:
    started: list[Replica] = []

    def start(**overrides: str) -> Replica:
        replica = Replica({**transcoder_env, **overrides}, tmp_path / f"replica-{len(started)}.log")
        started.append(replica)
        replica.wait_ready()
        return replica

    yield start
    for replica in started:
        replica.stop()


def ffmpeg_processes_under(path: Path) -> list[int]:
    """Pids of FFmpeg processes whose command line mentions ``path``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"ffmpeg") and str(path).encode() in b" ".join(cmdline):
            pids.append(int(entry.name))
    return pids
