"""The outbox relay with both publishers, on SQLite and PostgreSQL and the real RabbitMQ.

The channel publisher goes below FastStream (aio-pika's underlay channel, aiormq's
basic_publish(wait=False)): this test fails when either library changes that API.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from sqlalchemy import select

from mpr_shared.channel_publisher import ChannelPublisher
from mpr_shared.contracts import JobQueued, JobSpec, ProcessMedia
from mpr_shared.db.models import GatewayOutbox
from mpr_shared.messaging import TYPE_HEADER, make_broker
from mpr_shared.outbox import BrokerPublisher, OutboxRelay, outbox_row
from mpr_shared.settings import QueueType
from mpr_shared.topology import COMMANDS, EVENTS, as_queue_type, work_queue

PUBLISHERS = {"faststream": BrokerPublisher, "channel": ChannelPublisher}


def _messages() -> list[JobQueued | ProcessMedia]:
    job = uuid.uuid4()
    spec = JobSpec(kind="hls")
    queued = [
        JobQueued(job_id=job, source_key=f"k{i}.mp4", spec=spec, correlation_id=f"c{i}")
        for i in range(3)
    ]
    process = ProcessMedia(
        job_id=job,
        correlation_id=str(job),
        source_bucket="in",
        source_key="k.mp4",
        spec=spec,
        output_bucket="out",
        output_key="k/",
        priority=7,
    )
    return [*queued, process]


async def _drain(channel: aio_pika.abc.AbstractChannel, name: str, count: int) -> list:
    queue = await channel.get_queue(name)
    got: list = []
    for _ in range(200):
        if len(got) == count:
            break
        if message := await queue.get(no_ack=True, fail=False):
            got.append(message)
        else:
            await asyncio.sleep(0.05)
    await queue.delete(if_unused=False, if_empty=False)
    return got


@pytest.mark.parametrize("publisher", sorted(PUBLISHERS))
async def test_outbox_relay_publishes_pending_rows_once_with_their_properties(
    sessions, amqp_url: str, publisher: str
):
    messages = _messages()
    async with sessions() as session:
        session.add_all(GatewayOutbox(**outbox_row(m)) for m in messages)
        await session.commit()
    name = f"mpr.test.outbox.{uuid.uuid4().hex[:8]}"
    broker = make_broker(amqp_url, service="test")
    async with broker:
        await broker.connect()
        queue = await broker.declare_queue(
            as_queue_type(work_queue(name, "job.#", max_priority=9), QueueType.CLASSIC)
        )
        await queue.bind(await broker.declare_exchange(EVENTS), routing_key="job.queued")
        await queue.bind(await broker.declare_exchange(COMMANDS), routing_key="job.run")
        relay = OutboxRelay(PUBLISHERS[publisher](broker), sessions, GatewayOutbox)
        assert await relay.flush() == 4
        assert await relay.flush() == 0  # published rows are not sent again
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            got = await _drain(await connection.channel(), name, 5)
    # Once each, in order, but the command first: the queue has priorities and it has 7.
    expected = [messages[-1], *messages[:-1]]
    assert [m.message_id for m in got] == [str(m.id) for m in expected]
    for message, sent in zip(got, expected, strict=True):
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.headers[TYPE_HEADER] == type(sent).__name__
        assert message.content_type == "application/json"
        assert message.correlation_id == sent.correlation_id
        assert type(sent).model_validate_json(message.body) == sent
    assert [m.priority or 0 for m in got] == [7, 0, 0, 0]  # the command's own priority
    assert got[0].exchange == COMMANDS.name and got[-1].routing_key == "job.queued"
    async with sessions() as session:
        rows = (await session.scalars(select(GatewayOutbox))).all()
    assert all(r.published_at is not None and r.attempts == 1 for r in rows)


class FailingOnce:
    """Publishes through FastStream, except the row with ``fail_id``."""

    def __init__(self, inner: BrokerPublisher, fail_id: uuid.UUID) -> None:
        self.inner, self.fail_id = inner, fail_id

    async def publish(self, row) -> None:
        if row.id == self.fail_id:
            raise ConnectionError("no confirm")
        await self.inner.publish(row)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_unconfirmed_rows_stay_pending_and_are_retried(sessions, amqp_url: str):
    first, second = _messages()[:2]
    async with sessions() as session:
        session.add_all(GatewayOutbox(**outbox_row(m)) for m in (first, second))
        await session.commit()
    broker = make_broker(amqp_url, service="test")
    async with broker:
        await broker.connect()
        failing = OutboxRelay(
            FailingOnce(BrokerPublisher(broker), second.id), sessions, GatewayOutbox
        )
        with pytest.raises(ConnectionError):
            await failing.flush()
        assert failing.lag_seconds() > 0  # the unconfirmed row is still waiting
        async with sessions() as session:
            pending = (
                await session.scalars(
                    select(GatewayOutbox.id).where(GatewayOutbox.published_at.is_(None))
                )
            ).all()
        assert pending == [second.id]  # the confirmed one is marked, the other waits
        relay = OutboxRelay(BrokerPublisher(broker), sessions, GatewayOutbox)
        assert await relay.flush() == 1
        assert relay.lag_seconds() == 0.0  # the last pass found nothing unpublished
