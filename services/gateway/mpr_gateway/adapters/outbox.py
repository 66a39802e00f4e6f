"""The gateway's outbox relay: mpr_shared's OutboxRelay with a batched publish step.

Every accepted job adds two outbox rows, so at hundreds of jobs per second the shared relay's
row-at-a-time loop (publish, wait for the confirm, UPDATE one row) becomes the bottleneck and
holds SQLite's write lock most of the time. This relay keeps the same contract — publish
persistently with publisher confirms, mark rows sent only after the broker confirmed them,
retry everything unconfirmed on the next pass — but pipelines one batch of publishes (their
confirms are awaited together) and marks the whole batch in one UPDATE.

The relay shares the event loop with the HTTP handlers, so what it costs is counted in
loop iterations, each milliseconds long under load. FastStream's publish (aio-pika's, in
the end) holds the channel lock until its frame is written, one iteration per message, and
aiormq queues at most 10 frames, a publisher that finds the queue full waiting while holding
the lock. Publishing on the aiormq channel with ``wait=False`` and handing over a few
messages per iteration sends ~8 messages per iteration instead of one: 200 messages went out
in 0.2 s instead of 1.5-4 s while the gateway served 500 POST /api/jobs a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from pamqp.commands import Basic
from sqlalchemy import select, update

from mpr_shared.messaging import TYPE_HEADER
from mpr_shared.outbox import OutboxRelay

log = logging.getLogger(__name__)

# Fewer than aiormq's outgoing frame queue holds (Connection.FRAME_BUFFER_SIZE = 10), leaving
# room for the consumers' acks on the same connection.
PUBLISHES_PER_ITERATION = 8
PERSISTENT = 2  # AMQP delivery mode


class BatchingOutboxRelay(OutboxRelay):
    def __init__(self, *args: Any, write_lock: asyncio.Lock | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_lock = write_lock or contextlib.nullcontext()

    async def _publish_batch(self) -> int:
        table = self._model.__table__
        async with self._sessions() as session:
            query = (
                select(table)
                .where(table.c.published_at.is_(None))
                .order_by(table.c.created_at)
                .limit(self._batch_size)
            )
            if session.bind.dialect.name == "postgresql":
                # Several gateway replicas may relay at once; each takes rows nobody holds.
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if not rows:
                return 0
            publishes: list[asyncio.Future[None]] = []
            for start in range(0, len(rows), PUBLISHES_PER_ITERATION):
                wave = rows[start : start + PUBLISHES_PER_ITERATION]
                publishes += [asyncio.ensure_future(self._publish(row)) for row in wave]
                await asyncio.sleep(0)  # the connection's writer sends this wave first
            results = await asyncio.gather(*publishes, return_exceptions=True)
            confirmed = [
                row.id for row, result in zip(rows, results, strict=True) if result is None
            ]
            failures = [r for r in results if isinstance(r, BaseException)]
            async with self._write_lock:  # the unit of work's SQLite writer lock, if any
                if confirmed:
                    await session.execute(
                        update(table)
                        .where(table.c.id.in_(confirmed))
                        .values(published_at=datetime.now(UTC), attempts=table.c.attempts + 1)
                    )
                await session.commit()
        if failures:
            # Unconfirmed rows stay pending; the run loop retries them after poll_interval.
            raise failures[0]
        return len(rows)

    async def _publish(self, row: Any) -> None:
        """Publish one row persistently; returns once the broker confirmed it."""
        exchange = await self._broker.declare_exchange(self._exchanges[row.exchange])
        channel = await exchange.channel.get_underlay_channel()
        if not channel.publisher_confirms:
            raise RuntimeError("the outbox relay needs a channel with publisher confirms")
        await channel.basic_publish(
            row.body.encode(),
            exchange=exchange.name,
            routing_key=row.routing_key,
            mandatory=True,  # as FastStream publishes
            properties=Basic.Properties(
                content_type="application/json",
                headers={TYPE_HEADER: row.message_type},
                delivery_mode=PERSISTENT,
                priority=row.priority,
                correlation_id=row.correlation_id,
                message_id=str(row.id),
                timestamp=datetime.now(UTC),
            ),
            wait=False,  # do not hold the channel lock until the frame is written
        )
