"""The topology on the real RabbitMQ: what each queue receives, and where rejects go."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from mpr_shared.contracts import (
    AssetProbed,
    AssetRegistered,
    AssetRemoved,
    AssetUpdated,
    CancelJob,
    CreateJob,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobQueued,
    JobSpec,
    JobStarted,
    Message,
    ProbeStatus,
    ProcessMedia,
    ScanBucket,
)
from mpr_shared.messaging import TYPE_HEADER, make_broker, publish
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import (
    EVENTS,
    GATEWAY_JOB_EVENTS,
    GATEWAY_WORKERS,
    LIVE_QUEUE_SERVICES,
    declare_topology,
    durable_bindings,
    live_queue,
)

JOB, ASSET = uuid.uuid4(), uuid.uuid4()
SPEC = JobSpec(kind="audio")
EVERY_MESSAGE: list[Message] = [
    ProcessMedia(
        job_id=JOB,
        source_bucket="in",
        source_key="a.mp4",
        spec=SPEC,
        output_bucket="out",
        output_key="a.m4a",
    ),
    CancelJob(job_id=JOB),
    CreateJob(
        source_bucket="in", source_key="a.mp4", spec=SPEC, idempotency_key="k", requested_by="t"
    ),
    ScanBucket(prefix=""),
    JobQueued(job_id=JOB, source_key="a.mp4", spec=SPEC),
    JobStarted(job_id=JOB, worker="w"),
    JobProgress(job_id=JOB, percent=5),
    JobCompleted(job_id=JOB, outputs=[]),
    JobFailed(job_id=JOB, reason="r"),
    JobCancelled(job_id=JOB),
    AssetRegistered(asset_id=ASSET, bucket="in", key="a", size_bytes=1, etag="e", media_type="v"),
    AssetProbed(asset_id=ASSET, key="a", probe_status=ProbeStatus.OK),
    AssetUpdated(asset_id=ASSET, key="a", size_bytes=1, etag="e"),
    AssetRemoved(asset_id=ASSET, key="a"),
]
TRANSCODER_EVENTS = ["JobStarted", "JobProgress", "JobCompleted", "JobFailed", "JobCancelled"]
# What each durable queue must receive of EVERY_MESSAGE (plus the bucket notification).
EXPECTED = {
    "mpr.transcoder.jobs": ["ProcessMedia"],
    "mpr.catalog.scan": ["ScanBucket"],
    "mpr.gateway.job-requests": ["CreateJob"],
    # Not the JobQueued the gateway publishes itself, even after an old job.* binding.
    "mpr.gateway.job-events": TRANSCODER_EVENTS,
    "mpr.notifier.webhooks": ["JobQueued", *TRANSCODER_EVENTS],
    "mpr.catalog.s3-events": ["s3:ObjectCreated:Put"],
}


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        yield await connection.channel()


async def drain(channel: aio_pika.abc.AbstractChannel, name: str, settle: float = 0.5) -> list:
    """Everything on ``name`` once nothing new arrived for ``settle`` seconds."""
    queue = await channel.get_queue(name, ensure=False)
    got, quiet_since = [], asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - quiet_since < settle:
        if message := await queue.get(no_ack=True, fail=False):
            got.append(message)
            quiet_since = asyncio.get_running_loop().time()
        else:
            await asyncio.sleep(0.02)
    return got


def label(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    return str((message.headers or {}).get(TYPE_HEADER) or message.body.decode())


async def test_each_queue_receives_exactly_its_messages(amqp_url: str, channel):
    settings = CommonSettings(AMQP_URL=amqp_url, S3_BUCKET_IN="mpr-test-in")
    broker = make_broker(amqp_url, service="test")
    async with broker:
        await broker.connect()
        await declare_topology(broker, settings)
        # What an earlier version left on a long-lived broker; re-declaring removes it.
        stale = await channel.get_queue(GATEWAY_JOB_EVENTS.name)
        await stale.bind(EVENTS.name, routing_key="job.*")
        await declare_topology(broker, settings)
        for binding in durable_bindings(settings):
            await (await channel.get_queue(binding.queue.name)).purge()
        for message in EVERY_MESSAGE:
            await publish(broker, message)
        notifications = await channel.get_exchange(settings.s3_events_exchange)
        await notifications.publish(
            aio_pika.Message(b"s3:ObjectCreated:Put"), routing_key=settings.events_routing_key
        )
    received = {name: [label(m) for m in await drain(channel, name)] for name in EXPECTED}
    assert received == EXPECTED


async def test_rejected_messages_reach_their_dead_letter_queue(amqp_url: str, channel):
    settings = CommonSettings(AMQP_URL=amqp_url)
    broker = make_broker(amqp_url, service="test")
    async with broker:
        await broker.connect()
        await declare_topology(broker, settings)
    events = await channel.get_exchange(EVENTS.name)
    # Heartbeats expire instead of piling up, so their queue has no DLX (an expired message
    # would be dead-lettered too); a heartbeat its handler refuses is dead-lettered by the
    # middleware all the same.
    queues = [b.queue.name for b in durable_bindings(settings) if b.queue is not GATEWAY_WORKERS]
    for name in queues:  # a reject (no middleware, e.g. it failed) is kept, not dropped
        await (await channel.get_queue(name + ".dlq")).purge()
        await channel.default_exchange.publish(aio_pika.Message(name.encode()), routing_key=name)
        await (await get(channel, name)).reject(requeue=False)
    for service in LIVE_QUEUE_SERVICES:  # live queues too, into one DLQ per service
        live = live_queue(service, uuid.uuid4().hex[:6], "#")
        queue = await channel.declare_queue(
            live.name, exclusive=True, auto_delete=True, arguments=live.arguments
        )
        await queue.bind(events, routing_key=f"test.{live.name}")
        await events.publish(aio_pika.Message(live.name.encode()), routing_key=f"test.{live.name}")
        await (await get(channel, live.name)).reject(requeue=False)
        queues.append(f"mpr.{service}.live")
    for name in queues:
        [dead] = await drain(channel, name + ".dlq")
        assert dead.body.decode().startswith(name)


async def get(channel: aio_pika.abc.AbstractChannel, name: str):
    queue = await channel.get_queue(name, ensure=False)
    for _ in range(200):
        if message := await queue.get(fail=False):
            return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing arrived on {name}")
