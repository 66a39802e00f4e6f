"""The gateway in-process (httpx + asgi-lifespan) on the real RabbitMQ vhost, database and S3."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from sqlalchemy import insert, select

from mpr_gateway.api.app import create_app
from mpr_gateway.bootstrap import Container, bootstrap
from mpr_gateway.settings import GatewaySettings
from mpr_shared.contracts import ScanBucket, ScanResult
from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.models import Asset, GatewayOutbox
from mpr_shared.messaging import TYPE_HEADER
from mpr_shared.topology import CATALOG_SCAN, COMMANDS, EVENTS

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CALLBACK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Stack:
    client: httpx.AsyncClient
    app: Any
    settings: GatewaySettings
    sessions: Any
    bucket_in: str
    bucket_out: str
    scans: list[str] = field(default_factory=list)

    @property
    def container(self) -> Container:
        return self.app.state.container

    async def add_asset(
        self, key: str, *, duration: float | None = 3.0, media_type: str = "video", **kw: Any
    ) -> uuid.UUID:
        """Insert an asset as the catalog would (the gateway only reads ``assets``)."""
        asset_id = kw.pop("id", uuid.uuid4())
        now = datetime.now(UTC)
        async with self.sessions() as session:
            await session.execute(
                insert(Asset.__table__).values(
                    id=asset_id,
                    bucket=kw.pop("bucket", self.bucket_in),
                    key=key,
                    media_type=media_type,
                    size_bytes=kw.pop("size_bytes", 1234),
                    etag="etag",
                    status=kw.pop("status", "active"),
                    probe_status=kw.pop("probe_status", "ok" if duration else "pending"),
                    probe={"format": {"duration": duration}} if duration else None,
                    duration_seconds=duration,
                    created_at=now,
                    updated_at=now,
                    **kw,
                )
            )
            await session.commit()
        return asset_id

    async def outbox(self) -> list[Any]:
        async with self.sessions() as session:
            query = select(GatewayOutbox).order_by(GatewayOutbox.created_at)
            return list((await session.scalars(query)).all())


def gateway_settings(service_env: dict, database_url: str, **overrides: Any) -> GatewaySettings:
    env = {
        **service_env,
        "DATABASE_URL": database_url,
        "MPR_API_KEYS": f"tester:{API_KEY}",
        "MPR_CALLBACK_SECRET": CALLBACK_SECRET,
        "SCAN_TIMEOUT_SECONDS": "5",
        "OUTBOX_POLL_SECONDS": "0.2",
        **overrides,
    }
    return GatewaySettings(**env)


@pytest.fixture
async def stack(service_env: dict, database_url: str, buckets) -> AsyncIterator[Stack]:
    settings = gateway_settings(service_env, database_url)
    async for s in running_stack(settings, buckets):
        yield s


async def running_stack(settings: GatewaySettings, buckets) -> AsyncIterator[Stack]:
    app = create_app(bootstrap(settings))
    engine = create_engine(settings.async_database_url)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Stack(client, app, settings, session_factory(engine), *buckets)
    await engine.dispose()


@pytest.fixture
async def catalog(stack: Stack) -> AsyncIterator[list[str]]:
    """A tiny catalog stand-in on the real broker: answers ScanBucket with a ScanResult."""
    async with stand_in_catalog(stack) as scans:
        yield scans


@contextlib.asynccontextmanager
async def stand_in_catalog(stack: Stack) -> AsyncIterator[list[str]]:
    """Answers ScanBucket on the real broker, recording each prefix in ``stack.scans``."""
    broker = RabbitBroker(stack.settings.amqp_url.get_secret_value())

    @broker.subscriber(CATALOG_SCAN, COMMANDS)
    async def scan(command: ScanBucket) -> dict:
        stack.scans.append(command.prefix)
        files = [f"{command.prefix}new.mp4"]
        return ScanResult(found=3, registered=1, skipped=2, files=files).model_dump()

    await broker.connect()
    # Unanswered requests of earlier tests (no expiration on scans) must not count here.
    await (await broker.declare_queue(CATALOG_SCAN)).purge()
    await broker.start()
    try:
        yield stack.scans
    finally:
        await broker.stop()


@pytest.fixture
async def listener(stack: Stack) -> AsyncIterator[dict[str, list]]:
    """Records what the gateway publishes: ProcessMedia/CancelJob and its job events, and
    under "properties" each message's AMQP properties."""
    broker = RabbitBroker(stack.settings.amqp_url.get_secret_value())
    seen: dict[str, list] = {"commands": [], "events": [], "properties": []}
    tag = uuid.uuid4().hex[:8]

    def queue(name: str, key: str) -> RabbitQueue:
        return RabbitQueue(f"test.gateway.{name}.{tag}", auto_delete=True, routing_key=key)

    def recorder(name: str):
        async def record(body: dict, message: RabbitMessage) -> None:
            raw = message.raw_message
            seen[name].append((raw.routing_key, raw.priority, body))
            seen["properties"].append(
                {
                    "routing_key": raw.routing_key,
                    "delivery_mode": raw.delivery_mode,
                    "message_id": raw.message_id,
                    "correlation_id": raw.correlation_id,
                    "content_type": raw.content_type,
                    "type": (raw.headers or {}).get(TYPE_HEADER),
                }
            )

        return record

    for exchange, name in ((COMMANDS, "commands"), (EVENTS, "events")):
        broker.subscriber(queue(name, "job.*"), exchange)(recorder(name))

    await broker.start()
    try:
        yield seen
    finally:
        await broker.stop()


async def eventually(check, *, seconds: float = 20.0, every: float = 0.1):
    """Poll ``check`` (async, returns truthy when done) within a bounded time."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {seconds}s (last: {result!r})")
        await asyncio.sleep(every)
