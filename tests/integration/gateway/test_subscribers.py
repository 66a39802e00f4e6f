"""The gateway's subscribers and database role on the real RabbitMQ and database."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker
from sqlalchemy import insert, text
from sqlalchemy.exc import ProgrammingError

from mpr_shared.contracts import CreateJob, JobQueued, JobSpec
from mpr_shared.db.models import Asset
from mpr_shared.messaging import ERROR_HEADER, publish, send_command
from mpr_shared.topology import EVENTS, GATEWAY_JOB_EVENTS, dead_letter_queue
from tests.integration.gateway.conftest import AUTH, Stack, eventually


async def _next_dead_letter(channel: aio_pika.abc.AbstractChannel, queue: str):
    dlq = await channel.get_queue(queue, ensure=False)
    for _ in range(200):
        message = await dlq.get(no_ack=True, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived on {queue}")


async def test_create_job_over_rabbitmq_creates_one_job_and_strays_are_dead_lettered(
    stack: Stack, listener, amqp_url: str
):
    asset_id = await stack.add_asset("c/clip.mp4")
    command = CreateJob(
        source_bucket=stack.bucket_in,
        source_key="c/clip.mp4",
        asset_id=asset_id,
        spec=JobSpec(kind="audio"),
        idempotency_key=f"auto:{uuid.uuid4()}",
        requested_by="catalog:auto-audio",
    )
    # The gateway's own JobQueued, on a key its queue binds: no handler takes that type.
    stray = JobQueued(job_id=uuid.uuid4(), source_key="c/clip.mp4", spec=JobSpec(kind="audio"))
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq_name = dead_letter_queue(GATEWAY_JOB_EVENTS).name
        await (await channel.get_queue(dlq_name, ensure=False)).purge()
        catalog = RabbitBroker(amqp_url)
        async with catalog:
            await catalog.connect()
            await send_command(catalog, command)
            await send_command(catalog, command)  # a redelivery: still one job
            await publish(catalog, stray, EVENTS, routing_key="job.started")
        dead = await _next_dead_letter(channel, dlq_name)

    assert dead.headers[ERROR_HEADER] == (
        f"no handler for type 'JobQueued' on queue {GATEWAY_JOB_EVENTS.name}"
    )

    async def one_job() -> list | None:
        jobs = (await stack.client.get("/api/jobs", headers=AUTH)).json()["items"]
        return jobs or None

    [job] = await eventually(one_job)
    assert (job["kind"], job["preset"], job["asset_id"]) == ("audio", "audio-aac", str(asset_id))

    async def run_command() -> list | None:
        runs = [c for c in listener["commands"] if c[0] == "job.run"]
        return runs or None

    [(_, _, process)] = await eventually(run_command)
    assert process["job_id"] == job["id"] and process["causation_id"] == str(command.id)
    spec = {name: value for name, value in process["spec"].items() if value is not None}
    assert spec == {"kind": "audio", "preset": "audio-aac"}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_gateway_acts_as_its_role_and_cannot_write_the_catalogs_table(stack: Stack):
    db = stack.container.db
    [(user,)] = await db.read(text("SELECT current_user"))
    assert user == "mpr_gateway"
    writes = await db.begin()
    try:
        with pytest.raises(ProgrammingError, match="permission denied for table assets"):
            await writes.execute(
                insert(Asset.__table__).values(
                    id=uuid.uuid4(),
                    bucket="b",
                    key="k.mp4",
                    media_type="video",
                    size_bytes=1,
                    etag="e",
                    status="active",
                    probe_status="pending",
                )
            )
    finally:
        await writes.close()
