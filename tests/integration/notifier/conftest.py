"""A real notifier (uvicorn on a free port) against the test vhost, plus a webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import uvicorn
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mpr_notifier.api.app import create_app
from mpr_notifier.bootstrap import bootstrap
from mpr_notifier.settings import NotifierSettings
from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.migrate import upgrade
from mpr_shared.db.models import Job
from mpr_shared.messaging import make_broker

API_KEY = "it-key"
DASHBOARD = "http://127.0.0.1:8000"  # a web page's origin allowed to read the stream
WEBHOOKS_DLQ = "mpr.notifier.webhooks.dlq"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serve(
    app, port: int, *, signals: bool = False, **options: Any
) -> tuple[uvicorn.Server, asyncio.Task]:
    """Run uvicorn in this event loop; `signals` keeps its SIGTERM handler, as in production;
    `options` go to uvicorn.Config (lifespan="off" serves an app whose lifespan already ran)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=3, **options
    )
    server = uvicorn.Server(config)
    if not signals:
        server.capture_signals = contextlib.nullcontext  # the test process keeps its handlers
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()  # surface the startup error
            await asyncio.sleep(0.05)
    return server, task


async def shutdown(server: uvicorn.Server, task: asyncio.Task) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 30)


@dataclass
class Running:
    url: str
    settings: NotifierSettings
    database_url: str


async def metric(notifier: Running, sample: str) -> float:
    """One sample's value from the notifier's /metrics (0 when absent)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{notifier.url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def metric_reaches(notifier: Running, sample: str, value: float) -> None:
    async with asyncio.timeout(30):
        while await metric(notifier, sample) < value:
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def notifier_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('notifier')) / 'mpr.db'}"
    upgrade(url)
    return url


def notifier_settings(amqp_url: str, database_url: str, port: int) -> NotifierSettings:
    return NotifierSettings(
        _env_file=None,
        MPR_ENV="test",
        AMQP_URL=amqp_url,
        DATABASE_URL=database_url,
        NOTIFIER_PORT=port,
        MPR_API_KEYS=f"tests:{API_KEY}",
        WEBHOOK_ALLOW_PRIVATE="true",
        WEBHOOK_MAX_ATTEMPTS="3",
        WEBHOOK_BACKOFF_SECONDS="0.2",
        WEBHOOK_TIMEOUT_SECONDS="5",
        CORS_ORIGINS=DASHBOARD,
    )


@pytest.fixture(scope="module")
async def notifier(amqp_url: str, notifier_database: str) -> AsyncIterator[Running]:
    async with running_notifier(amqp_url, notifier_database) as running:
        yield running


@contextlib.asynccontextmanager
async def running_notifier(amqp_url: str, database_url: str) -> AsyncIterator[Running]:
    """The notifier's app under uvicorn on a free port, once /api/ready says so."""
    port = free_port()
    settings = notifier_settings(amqp_url, database_url, port)
    server, task = await serve(create_app(bootstrap(settings)), port)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client, asyncio.timeout(30):
        while (await client.get(f"{url}/api/ready")).status_code != 200:
            await asyncio.sleep(0.1)
    try:
        yield Running(url, settings, database_url)
    finally:
        await shutdown(server, task)


@pytest.fixture(scope="module")
async def publisher(amqp_url: str) -> AsyncIterator:
    broker = make_broker(amqp_url, service="notifier-tests")
    await broker.connect()
    yield broker
    await broker.stop()


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: /flaky answers 500 to each webhook-id's first try,
    /down always 503, any other path 204."""

    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, webhook_id: str, count: int) -> list[tuple[str, dict, bytes]]:
        """The first `count` requests carrying this webhook-id."""
        async with asyncio.timeout(60):
            while len(hits := self.with_id(webhook_id)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return hits[:count]

    def with_id(self, webhook_id: str) -> list[tuple[str, dict, bytes]]:
        return [r for r in self.requests if r[1].get("webhook-id") == webhook_id]


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as rec:
        yield rec


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    """A :class:`Receiver` served by uvicorn on a free port of 127.0.0.1."""
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}")

    async def hook(request: Request) -> Response:
        path = request.url.path
        headers = dict(request.headers)
        seen = [h for p, h, _ in rec.requests if p == path]
        rec.requests.append((path, headers, await request.body()))
        rec.arrived.set()
        if path == "/down":
            return Response(status_code=503)
        first = all(h["webhook-id"] != headers["webhook-id"] for h in seen)
        if path == "/flaky" and first:
            return Response(status_code=500)
        return Response(status_code=204)

    app = Starlette(routes=[Route("/{name}", hook, methods=["POST"])])
    server, task = await serve(app, port)
    try:
        yield rec
    finally:
        await shutdown(server, task)


# ---------------------------------------------------------------- the gateway's side


async def add_job(
    database_url: str, webhook_url: str | None, status: str = "completed"
) -> uuid.UUID:
    """Insert a job the way the gateway would (the notifier itself only reads jobs)."""
    job_id = uuid.uuid4()
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            session.add(
                Job(
                    id=job_id,
                    source_bucket="in",
                    source_key="a.mp4",
                    kind="transcode",
                    preset="h264-720p",
                    spec={"kind": "transcode", "preset": "h264-720p"},
                    output_bucket="out",
                    output_key=f"a/{job_id}/h264-720p.mp4",
                    webhook_url=webhook_url,
                    status=status,
                )
            )
    finally:
        await engine.dispose()
    return job_id


async def set_job_status(database_url: str, job_id: uuid.UUID, status: str) -> None:
    """Apply a job's event the way the gateway does, late."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await session.execute(update(Job).where(Job.id == job_id).values(status=status))
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- dead letters


async def dead_letter(amqp_url: str, queue: str, message_id: str) -> aio_pika.IncomingMessage:
    """Wait for ``message_id`` in ``queue`` and take it (others seen on the way are taken too)."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        dlq = await (await connection.channel()).get_queue(queue, ensure=False)
        async with asyncio.timeout(30):
            while True:
                message = await dlq.get(no_ack=True, fail=False)
                if message is not None and message.message_id == message_id:
                    return message
                if message is None:
                    await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def dead_letter_ids(amqp_url: str, queue: str) -> set[str]:
    """The ids of every message in ``queue``, left there (unacked reads go back on close)."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        dlq = await (await connection.channel()).get_queue(queue, ensure=False)
        ids = set()
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            ids.add(str(message.message_id))
        return ids
    finally:
        await connection.close()
