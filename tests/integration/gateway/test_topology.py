"""The gateway's event queue on the real RabbitMQ: the transcoder's events, not its own."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika

from mpr_shared.contracts import JobQueued, JobSpec, JobStarted
from mpr_shared.messaging import make_broker, publish_event
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import EVENTS, GATEWAY_JOB_EVENTS, declare_topology


async def test_job_queued_does_not_reach_the_gateway_even_after_an_old_job_star_binding(
    amqp_url: str,
):
    settings = CommonSettings(AMQP_URL=amqp_url)
    broker = make_broker(amqp_url, service="test")
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        async with broker:
            await broker.connect()
            await declare_topology(broker, settings)
            # What an earlier version left on a long-lived broker.
            queue = await channel.get_queue(GATEWAY_JOB_EVENTS.name)
            await queue.bind(EVENTS.name, routing_key="job.*")
            await declare_topology(broker, settings)
            await queue.purge()

            job_id = uuid.uuid4()
            queued = JobQueued(
                job_id=job_id, attempt=1, source_key="a.mp4", spec=JobSpec(kind="audio")
            )
            started = JobStarted(job_id=job_id, worker="w1")
            await publish_event(broker, queued)
            await publish_event(broker, started)

        received = []
        deadline = asyncio.get_running_loop().time() + 10
        while not received and asyncio.get_running_loop().time() < deadline:
            if message := await queue.get(no_ack=True, fail=False):
                received.append(message)
            else:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # JobQueued, if it were routed, was published first
        while message := await queue.get(no_ack=True, fail=False):
            received.append(message)
    assert [m.routing_key for m in received] == [JobStarted.ROUTING_KEY]
    assert JobStarted.model_validate_json(received[0].body) == started
