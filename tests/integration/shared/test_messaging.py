"""Publishes, handler selection, retries and dead letters against the real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue

from mpr_shared.contracts import JobCompleted, JobStarted
from mpr_shared.messaging import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    ERROR_TYPE_HEADER,
    HANDLER_ATTEMPTS,
    QUEUE_HEADER,
    TYPE_HEADER,
    make_broker,
    of_type,
    publish,
    publish_event,
    queue_router,
)
from mpr_shared.settings import CommonSettings, QueueType
from mpr_shared.topology import (
    DEAD_LETTER,
    EVENTS,
    GATEWAY_JOB_EVENTS,
    as_queue_type,
    dead_letter_queue,
    declare_topology,
    work_queue,
)


async def get_one(channel: aio_pika.abc.AbstractChannel, queue: str, timeout: float = 10.0):
    q = await channel.get_queue(queue, ensure=False)
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        msg = await q.get(no_ack=True, fail=False)
        if msg is not None:
            return msg
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived on {queue}")


@dataclass
class Consumer:
    """A test queue on mpr.events with its DLQ, and a broker whose handlers record calls."""

    name: str
    queue: RabbitQueue
    broker: RabbitBroker
    calls: list[tuple[str, str]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def router(self):
        return queue_router(self.queue)

    async def start(self) -> None:
        await self.broker.start()
        dlx = await self.broker.declare_exchange(DEAD_LETTER)
        dlq = await self.broker.declare_queue(dead_letter_queue(self.queue))
        await dlq.bind(dlx, routing_key=self.name)

    async def dead_letter(self, amqp_url: str, timeout: float = 10.0):
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            return await get_one(await connection.channel(), self.name + ".dlq", timeout)


@pytest.fixture
async def consumer(amqp_url: str) -> AsyncIterator[Consumer]:
    name = f"mpr.test.{uuid.uuid4().hex[:8]}"
    broker = make_broker(amqp_url, service="test")
    yield Consumer(name, as_queue_type(work_queue(name, "job.*"), QueueType.CLASSIC), broker)
    await broker.stop()


async def test_malformed_messages_are_dead_lettered_with_reason_and_consumer_keeps_going(
    consumer: Consumer, amqp_url: str
):
    router = consumer.router()

    @router.subscriber(consumer.queue, EVENTS)
    async def handle(event: JobStarted) -> None:
        consumer.calls.append(("started", str(event.id)))
        consumer.done.set()

    consumer.broker.include_router(router)
    await consumer.start()
    key = JobStarted.ROUTING_KEY
    await consumer.broker.publish(b"{not json", exchange=EVENTS, routing_key=key, persist=True)
    await consumer.broker.publish({"job_id": "nope"}, exchange=EVENTS, routing_key=key)
    good = JobStarted(job_id=uuid.uuid4(), worker="w1")
    await publish_event(consumer.broker, good)
    await asyncio.wait_for(consumer.done.wait(), 10)
    first, second = await consumer.dead_letter(amqp_url), await consumer.dead_letter(amqp_url)
    reasons = {m.body: str(m.headers[ERROR_HEADER]) for m in (first, second)}
    assert reasons[b"{not json"].startswith("body is not valid JSON")
    bad_schema = reasons[b'{"job_id":"nope"}']
    assert "job_id" in bad_schema and "worker: Field required" in bad_schema
    assert {m.headers[QUEUE_HEADER] for m in (first, second)} == {consumer.name}
    assert {m.headers[ERROR_TYPE_HEADER] for m in (first, second)} == {"ValidationError"}
    assert consumer.calls == [("started", str(good.id))]


async def test_non_utf8_bytes_are_dead_lettered_at_once(consumer: Consumer, amqp_url: str):
    router = consumer.router()

    @router.subscriber(consumer.queue, EVENTS)
    async def handle(event: JobStarted) -> None:
        consumer.calls.append(("started", str(event.id)))

    consumer.broker.include_router(router)
    await consumer.start()
    garbage = b"\x00\xff\xfe garbage"
    await consumer.broker.publish(
        garbage, exchange=EVENTS, routing_key="job.started", content_type="application/json"
    )
    dead = await consumer.dead_letter(amqp_url)
    assert dead.body == garbage and consumer.calls == []
    assert str(dead.headers[ERROR_HEADER]).startswith("body is not UTF-8 text")
    assert dead.headers[ERROR_TYPE_HEADER] == "UnicodeDecodeError"
    assert ATTEMPTS_HEADER not in dead.headers  # poison: no retries


async def test_publish_event_is_persistent_typed_and_routed(amqp_url: str):
    broker = make_broker(amqp_url, service="test")
    async with broker:
        await broker.connect()
        await declare_topology(broker, CommonSettings(AMQP_URL=amqp_url))
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel()
            await (await channel.get_queue(GATEWAY_JOB_EVENTS.name)).purge()
            event = JobStarted(job_id=uuid.uuid4(), worker="w", correlation_id="c-1")
            await publish_event(broker, event)
            msg = await get_one(channel, GATEWAY_JOB_EVENTS.name)
    assert msg.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert msg.message_id == str(event.id) and msg.correlation_id == "c-1"
    assert msg.headers[TYPE_HEADER] == "JobStarted" and msg.content_type == "application/json"
    assert msg.routing_key == JobStarted.ROUTING_KEY
    assert msg.timestamp == event.occurred_at.replace(microsecond=0)  # AMQP: whole seconds
    assert JobStarted.model_validate_json(msg.body) == event


def _failing_handler(consumer: Consumer, errors: list[Exception]):
    """A JobStarted handler that raises ``errors`` in turn, then succeeds."""
    router = consumer.router()

    @router.subscriber(consumer.queue, EVENTS)
    async def handle(event: JobStarted) -> None:
        consumer.calls.append(("started", str(event.id)))
        if len(consumer.calls) <= len(errors):
            raise errors[len(consumer.calls) - 1]
        consumer.done.set()

    consumer.broker.include_router(router)


async def test_transient_errors_are_retried_then_processed(consumer: Consumer):
    _failing_handler(consumer, [RuntimeError("database is locked"), ConnectionError("fail-over")])
    await consumer.start()
    event = JobStarted(job_id=uuid.uuid4(), worker="w")
    await publish_event(consumer.broker, event)
    await asyncio.wait_for(consumer.done.wait(), 20)
    assert consumer.calls == [("started", str(event.id))] * 3  # two failures, then success


async def test_persistent_errors_are_dead_lettered_after_bounded_retries(
    consumer: Consumer, amqp_url: str
):
    _failing_handler(consumer, [RuntimeError("still broken")] * 10)
    await consumer.start()
    await publish_event(consumer.broker, JobStarted(job_id=uuid.uuid4(), worker="w"))
    dead = await consumer.dead_letter(amqp_url, timeout=30)
    assert len(consumer.calls) == HANDLER_ATTEMPTS
    assert dead.headers[ERROR_HEADER] == "RuntimeError: still broken"
    assert dead.headers[ERROR_TYPE_HEADER] == "RuntimeError"  # the cause, not a label
    assert dead.headers[ATTEMPTS_HEADER] == HANDLER_ATTEMPTS - 1
    assert dead.headers[TYPE_HEADER] == "JobStarted"  # every header survived the retries


def _typed_handlers(consumer: Consumer, failures: int) -> None:
    """One handler per type on one queue; the JobCompleted one fails ``failures`` times."""
    router = consumer.router()
    sub = router.subscriber(consumer.queue, EVENTS)

    @sub(filter=of_type(JobStarted))
    async def started(event: JobStarted) -> None:
        consumer.calls.append(("started", str(event.id)))

    @sub(filter=of_type(JobCompleted))
    async def completed(event: JobCompleted) -> None:
        consumer.calls.append(("completed", str(event.id)))
        if sum(kind == "completed" for kind, _ in consumer.calls) <= failures:
            raise RuntimeError("the gateway lags")
        consumer.done.set()

    consumer.broker.include_router(router)


async def test_a_retry_reaches_the_same_typed_handler(consumer: Consumer):
    # The retry comes back with the queue's name as routing key: selection by type, not key.
    _typed_handlers(consumer, failures=2)
    await consumer.start()
    done = JobCompleted(job_id=uuid.uuid4(), outputs=[])
    await publish_event(consumer.broker, done)
    await asyncio.wait_for(consumer.done.wait(), 20)
    assert consumer.calls == [("completed", str(done.id))] * 3


async def test_a_retry_without_a_type_header_reaches_the_same_handler(consumer: Consumer):
    # A publisher that sets no x-mpr-type: the first routing key travels with the retry.
    _typed_handlers(consumer, failures=1)
    await consumer.start()
    done = JobCompleted(job_id=uuid.uuid4(), outputs=[])
    await consumer.broker.publish(
        done.model_dump(mode="json"), exchange=EVENTS, routing_key=JobCompleted.ROUTING_KEY
    )
    await asyncio.wait_for(consumer.done.wait(), 20)
    assert consumer.calls == [("completed", str(done.id))] * 2


async def test_a_type_no_handler_takes_is_dead_lettered_with_the_reason(
    consumer: Consumer, amqp_url: str
):
    _typed_handlers(consumer, failures=0)
    await consumer.start()
    job = uuid.uuid4()
    stray = JobStarted(job_id=job, worker="w")
    await publish(consumer.broker, stray, EVENTS, routing_key="job.renamed")  # typed, known
    await consumer.broker.publish({"job_id": str(job)}, exchange=EVENTS, routing_key="job.odd")
    dead = await consumer.dead_letter(amqp_url)
    done = JobCompleted(job_id=job, outputs=[])
    await publish_event(consumer.broker, done)
    await asyncio.wait_for(consumer.done.wait(), 10)  # the consumer keeps going
    assert dead.headers[ERROR_HEADER] == f"no handler for type 'job.odd' on queue {consumer.name}"
    assert dead.headers[ERROR_TYPE_HEADER] == "SubscriberNotFound"
    assert ATTEMPTS_HEADER not in dead.headers  # never retried: no handler will appear
    # Typed: the header decides, whatever the routing key.
    assert consumer.calls == [("started", str(stray.id)), ("completed", str(done.id))]
