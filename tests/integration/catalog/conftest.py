"""The catalog running for real (RabbitMQ vhost, S3 bucket, SQLite or PostgreSQL, ffprobe),
plus a publisher that sends bucket notifications the way MinIO's AMQP target does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker
from sqlalchemy import select

from mpr_catalog.bootstrap import Container, bootstrap, running
from mpr_catalog.settings import CatalogSettings
from mpr_shared.contracts import ScanBucket, ScanResult
from mpr_shared.db.models import Asset
from mpr_shared.messaging import TYPE_HEADER, message_properties
from mpr_shared.topology import COMMANDS
from tests.support.media import make_audio, make_video
from tests.unit.catalog.samples import minio_body, minio_headers


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if result := await check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:g}s")
        await asyncio.sleep(0.05)


@pytest.fixture
def catalog_env(service_env: dict, database_url: str) -> dict:
    return service_env | {
        "DATABASE_URL": database_url,
        "PROBE_CONCURRENCY": "2",
        "PROBE_TIMEOUT_SECONDS": "30",
        "OUTBOX_POLL_SECONDS": "0.2",
    }


@pytest.fixture
def settings(catalog_env: dict) -> CatalogSettings:
    return CatalogSettings(**catalog_env)


@pytest.fixture
async def catalog(settings: CatalogSettings) -> AsyncIterator[Container]:
    async with running(bootstrap(settings)) as runtime:
        yield runtime


async def request_scan(amqp_url: str, prefix: str = "") -> ScanResult:
    """What the gateway does: ScanBucket via broker.request, ScanResult back."""
    command = ScanBucket(prefix=prefix, correlation_id=f"scan-{uuid.uuid4()}")
    async with RabbitBroker(amqp_url) as client:
        reply = await client.request(
            command.model_dump(mode="json"),
            exchange=COMMANDS,
            routing_key=ScanBucket.ROUTING_KEY,
            timeout=60,
            **message_properties(command).kwargs(),
        )
    # The reply is published like every MPR message (mpr_shared.messaging.publish_properties).
    assert reply.headers[TYPE_HEADER] == "ScanResult"
    assert reply.correlation_id == command.correlation_id
    assert reply.raw_message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    return ScanResult.model_validate(await reply.decode())


@dataclass
class Assets:
    """Reads the assets table the catalog writes."""

    sessions: Any
    bucket: str

    async def all(self) -> list[Asset]:
        async with self.sessions() as session:
            query = select(Asset).where(Asset.bucket == self.bucket).order_by(Asset.key)
            return list((await session.scalars(query)).all())

    async def get(self, key: str) -> Asset | None:
        async with self.sessions() as session:
            query = select(Asset).where(Asset.bucket == self.bucket, Asset.key == key)
            return (await session.scalars(query)).first()

    async def wait(self, key: str, **expected: Any) -> Asset:
        async def matches() -> Asset | None:
            asset = await self.get(key)
            if asset and all(getattr(asset, k) == v for k, v in expected.items()):
                return asset
            return None

        return await wait_for(matches)


@pytest.fixture
def assets(sessions, settings: CatalogSettings) -> Assets:
    return Assets(sessions, settings.s3_bucket_in)


@dataclass
class MinioPublisher:
    """Publishes like MinIO's AMQP target: it declares the exchange (topic, durable, not
    auto-deleted, not internal, no arguments) before each publish and sends JSON with the
    minio-bucket / minio-event headers, persistent, routing key = the bucket name."""

    channel: aio_pika.abc.AbstractChannel
    exchange_name: str
    routing_key: str

    async def publish_raw(self, body: bytes, headers: dict[str, Any] | None = None) -> None:
        exchange = await self.channel.declare_exchange(
            self.exchange_name,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            auto_delete=False,
            internal=False,
            arguments=None,
        )
        message = aio_pika.Message(
            body,
            content_type="application/json",
            headers=headers or {},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key=self.routing_key, mandatory=False)

    async def event(self, name: str, bucket: str, key: str, **fields: Any) -> None:
        await self.publish_raw(minio_body(name, bucket, key, **fields), minio_headers(name, bucket))


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()


async def dead_lettered(
    amqp: aio_pika.abc.AbstractConnection, dlq: str, marker: str, count: int
) -> dict[str, dict[str, Any]]:
    """Headers of the messages tagged ``x-test: <marker>:<name>`` that reached ``dlq``, by
    name, once ``count`` have; other messages are left there (the vhost, so the DLQ, is
    shared by the test session)."""
    found: dict[str, dict[str, Any]] = {}
    channel = await amqp.channel()
    queue = await channel.declare_queue(dlq, durable=True, passive=True)

    async def drain() -> bool:
        others = []
        while message := await queue.get(no_ack=False, fail=False):
            tag = str(message.headers.get("x-test", ""))
            if tag.startswith(f"{marker}:"):
                found[tag.split(":", 1)[1]] = dict(message.headers)
                await message.ack()
            else:
                others.append(message)
        for message in others:
            await message.nack(requeue=True)
        return len(found) >= count

    try:
        await wait_for(drain)
    finally:
        await channel.close()
    return found


@pytest.fixture
async def minio(amqp, settings: CatalogSettings) -> MinioPublisher:
    channel = await amqp.channel(publisher_confirms=True)
    return MinioPublisher(channel, settings.s3_events_exchange, settings.events_routing_key)


@dataclass
class Collected:
    """Messages the catalog published (asset events, CreateJob commands), in order."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of(self, routing_key: str) -> list[dict[str, Any]]:
        return [body for key, body in self.messages if key == routing_key]

    async def wait(self, routing_key: str, count: int = 1) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            found = self.of(routing_key)
            return found if len(found) >= count else None

        return await wait_for(enough)


@pytest.fixture
async def published(amqp) -> AsyncIterator[Collected]:
    collected = Collected()
    channel = await amqp.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for name, pattern in (("mpr.events", "asset.#"), ("mpr.commands", "job.create")):
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        await queue.bind(exchange, routing_key=pattern)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            collected.messages.append((message.routing_key or "", json.loads(message.body)))

    await queue.consume(on_message)
    yield collected
    await channel.close()


# ---------------------------------------------------------------- media (generated, tiny)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("catalog-media")


@pytest.fixture(scope="session")
def video_file(media_dir: Path) -> Path:
    return make_video(media_dir / "clip.mp4", seconds=1.0, size="320x240")


@pytest.fixture(scope="session")
def audio_file(media_dir: Path) -> Path:
    return make_audio(media_dir / "tone.mp3", seconds=1.0)
