"""The gateway's outbox relay: mpr_shared's OutboxRelay with a batched publish step.

Every accepted job adds two outbox rows, so at hundreds of jobs per second the shared relay's
row-at-a-time loop (publish, wait for the confirm, UPDATE one row) becomes the bottleneck and
holds SQLite's write lock most of the time. This relay keeps the same contract — publish
persistently with publisher confirms, mark rows sent only after the broker confirmed them,
retry everything unconfirmed on the next pass — but pipelines one batch of publishes (their
confirms are awaited together) and marks the whole batch in one UPDATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from mpr_shared.messaging import TYPE_HEADER
from mpr_shared.outbox import OutboxRelay

log = logging.getLogger(__name__)


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
            results = await asyncio.gather(
                *(self._publish(row) for row in rows), return_exceptions=True
            )
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

    async def _publish(self, row) -> None:
        await self._broker.publish(
            row.body.encode(),
            exchange=self._exchanges[row.exchange],
            routing_key=row.routing_key,
            persist=True,
            message_id=str(row.id),
            correlation_id=row.correlation_id,
            priority=row.priority,
            headers={TYPE_HEADER: row.message_type},
            content_type="application/json",
        )
