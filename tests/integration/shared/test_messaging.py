"""Dead-lettering, confirms and topology against the real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker

from mpr_shared.contracts import JobStarted
from mpr_shared.messaging import ERROR_HEADER, QUEUE_HEADER, make_broker, publish_event
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import (
    EVENTS,
    GATEWAY_JOB_EVENTS,
    declare_topology,
    durable_bindings,
    work_queue,
)


async def _get(channel: aio_pika.abc.AbstractChannel, queue: str, timeout: float = 10.0):
    q = await channel.get_queue(queue, ensure=False)
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        msg = await q.get(no_ack=True, fail=False)
        if msg is not None:
            return msg
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived on {queue}")


async def test_topology_declares_durable_queues_and_dlqs(amqp_url: str):
    settings = CommonSettings(AMQP_URL=amqp_url)
    broker = make_broker(amqp_url, service="test")
    await broker.connect()
    try:
        await declare_topology(broker, settings)
        await declare_topology(broker, settings)  # idempotent
    finally:
        await broker.stop()
    conn = await aio_pika.connect_robust(amqp_url)
    async with conn:
        ch = await conn.channel()
        for binding in durable_bindings(settings):
            # Re-declaring with durable=True and the same arguments fails with
            # PRECONDITION_FAILED unless the server holds exactly that queue.
            await ch.declare_queue(
                binding.queue.name, durable=True, arguments=binding.queue.arguments
            )
            await ch.declare_queue(binding.queue.name + ".dlq", passive=True)
        await ch.declare_exchange(settings.s3_events_exchange, passive=True)


async def test_malformed_messages_are_dead_lettered_with_reason_and_consumer_keeps_going(
    amqp_url: str,
):
    name = f"mpr.test.{uuid.uuid4().hex[:8]}"
    queue = work_queue(name, name)
    broker: RabbitBroker = make_broker(amqp_url, service="test")
    seen: list[JobStarted] = []
    done = asyncio.Event()

    @broker.subscriber(queue, EVENTS)
    async def handle(event: JobStarted) -> None:
        seen.append(event)
        done.set()

    async with broker:
        await broker.start()
        from mpr_shared.topology import DEAD_LETTER, dead_letter_queue

        dlx = await broker.declare_exchange(DEAD_LETTER)
        dlq = await broker.declare_queue(dead_letter_queue(queue))
        await dlq.bind(dlx, routing_key=name)

        await broker.publish(b"{not json", exchange=EVENTS, routing_key=name, persist=True)
        await broker.publish({"job_id": "nope"}, exchange=EVENTS, routing_key=name, persist=True)
        good = JobStarted(job_id=uuid.uuid4(), worker="w1")
        await broker.publish(good.model_dump(mode="json"), exchange=EVENTS, routing_key=name)
        await asyncio.wait_for(done.wait(), 10)

        conn = await aio_pika.connect_robust(amqp_url)
        async with conn:
            ch = await conn.channel()
            first = await _get(ch, name + ".dlq")
            second = await _get(ch, name + ".dlq")
        reasons = {m.body: str(m.headers[ERROR_HEADER]) for m in (first, second)}
        assert reasons[b"{not json"].startswith("body is not valid JSON")
        bad_schema = reasons[b'{"job_id":"nope"}']
        assert "job_id" in bad_schema and "worker: Field required" in bad_schema
        assert {m.headers[QUEUE_HEADER] for m in (first, second)} == {name}
    assert [e.id for e in seen] == [good.id]


@pytest.mark.parametrize("routing_key", [JobStarted.ROUTING_KEY])
async def test_publish_event_is_persistent_and_routed(amqp_url: str, routing_key: str):
    broker = make_broker(amqp_url, service="test")
    settings = CommonSettings(AMQP_URL=amqp_url)
    async with broker:
        await broker.connect()
        await declare_topology(broker, settings)
        conn = await aio_pika.connect_robust(amqp_url)
        async with conn:
            ch = await conn.channel()
            q = await ch.get_queue(GATEWAY_JOB_EVENTS.name)
            await q.purge()
            event = JobStarted(job_id=uuid.uuid4(), worker="w", correlation_id="c-1")
            await publish_event(broker, event)
            msg = await _get(ch, GATEWAY_JOB_EVENTS.name)
            assert msg.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert msg.message_id == str(event.id)
            assert msg.correlation_id == "c-1"
            assert msg.routing_key == routing_key
            assert JobStarted.model_validate_json(msg.body) == event


async def _consume_with(amqp_url: str, handler_errors: list[Exception]):
    """A consumer whose handler raises the given errors in turn, then succeeds."""
    name = f"mpr.test.{uuid.uuid4().hex[:8]}"
    queue = work_queue(name, name)
    broker = make_broker(amqp_url, service="test")
    calls: list[JobStarted] = []
    done = asyncio.Event()

    @broker.subscriber(queue, EVENTS)
    async def handle(event: JobStarted) -> None:
        calls.append(event)
        if len(calls) <= len(handler_errors):
            raise handler_errors[len(calls) - 1]
        done.set()

    return name, queue, broker, calls, done


async def test_transient_errors_are_retried_then_processed(amqp_url: str):
    errors = [RuntimeError("database is locked"), ConnectionError("fail-over")]
    name, _, broker, calls, done = await _consume_with(amqp_url, errors)
    async with broker:
        await broker.start()
        event = JobStarted(job_id=uuid.uuid4(), worker="w")
        await publish_event_to(broker, event, name)
        await asyncio.wait_for(done.wait(), 20)
    assert [c.id for c in calls] == [event.id] * 3  # two failures, then success


async def test_persistent_errors_are_dead_lettered_after_bounded_retries(amqp_url: str):
    from mpr_shared.messaging import ATTEMPTS_HEADER, HANDLER_ATTEMPTS
    from mpr_shared.topology import DEAD_LETTER, dead_letter_queue

    errors = [RuntimeError("still broken")] * 10
    name, queue, broker, calls, _ = await _consume_with(amqp_url, errors)
    async with broker:
        await broker.start()
        dlx = await broker.declare_exchange(DEAD_LETTER)
        dlq = await broker.declare_queue(dead_letter_queue(queue))
        await dlq.bind(dlx, routing_key=name)
        await publish_event_to(broker, JobStarted(job_id=uuid.uuid4(), worker="w"), name)
        conn = await aio_pika.connect_robust(amqp_url)
        async with conn:
            dead = await _get(await conn.channel(), name + ".dlq", timeout=30)
    assert len(calls) == HANDLER_ATTEMPTS
    assert dead.headers[ERROR_HEADER] == "RuntimeError: still broken"
    assert dead.headers[ATTEMPTS_HEADER] == HANDLER_ATTEMPTS - 1


async def publish_event_to(broker: RabbitBroker, event: JobStarted, routing_key: str) -> None:
    from mpr_shared.messaging import publish

    await publish(broker, event, EVENTS, routing_key=routing_key)
