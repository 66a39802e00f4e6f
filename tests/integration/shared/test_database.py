"""Migrations and the outbox relay on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
from sqlalchemy import inspect, select

from mpr_shared.contracts import JobQueued, JobSpec
from mpr_shared.db import create_engine
from mpr_shared.db.models import TABLE_WRITERS, GatewayOutbox
from mpr_shared.messaging import make_broker
from mpr_shared.outbox import OutboxRelay, outbox_row
from mpr_shared.topology import EVENTS, work_queue


async def test_migrations_create_every_table(database_url: str):
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert set(TABLE_WRITERS) <= tables


async def test_outbox_relay_publishes_pending_rows_once(sessions, amqp_url: str):
    name = f"mpr.test.outbox.{uuid.uuid4().hex[:8]}"
    events = [
        JobQueued(job_id=uuid.uuid4(), source_key=f"k{i}.mp4", spec=JobSpec(kind="hls"))
        for i in range(3)
    ]
    async with sessions() as session:
        for event in events:
            session.add(outbox_row(GatewayOutbox, event, EVENTS))
        await session.commit()

    broker = make_broker(amqp_url, service="test")
    async with broker:
        await broker.connect()
        exchange = await broker.declare_exchange(EVENTS)
        queue = await broker.declare_queue(work_queue(name, JobQueued.ROUTING_KEY))
        await queue.bind(exchange, routing_key=JobQueued.ROUTING_KEY)
        relay = OutboxRelay(broker, sessions, GatewayOutbox, {EVENTS.name: EVENTS})
        assert await relay.flush() == 3
        assert await relay.flush() == 0  # published rows are not sent again

        conn = await aio_pika.connect_robust(amqp_url)
        async with conn:
            ch = await conn.channel()
            q = await ch.get_queue(name)
            got = []
            for _ in range(50):
                msg = await q.get(no_ack=True, fail=False)
                if msg:
                    got.append(JobQueued.model_validate_json(msg.body).id)
                elif len(got) == 3:
                    break
                else:
                    await asyncio.sleep(0.05)
            await q.delete(if_unused=False, if_empty=False)
    assert got == [e.id for e in events]  # in order
    async with sessions() as session:
        rows = (await session.scalars(select(GatewayOutbox))).all()
    assert all(r.published_at is not None for r in rows)


async def test_models_and_migrations_agree(database_url: str):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mpr_shared.db.models import Base

    engine = create_engine(database_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    await engine.dispose()
    assert diff == [], f"models changed without a migration: {diff}"
