"""Transactional outbox: a state change and the messages it causes commit together; a relay
publishes them afterwards with confirms. A crash between the two only delays a publish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from faststream.rabbit import RabbitBroker, RabbitExchange
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpr_shared.contracts import Message
from mpr_shared.db.models import OutboxRow
from mpr_shared.messaging import TYPE_HEADER

log = logging.getLogger(__name__)

# Publishes handed over per event-loop iteration: fewer than aiormq's outgoing frame queue
# holds (Connection.FRAME_BUFFER_SIZE = 10), leaving room for consumers' acks.
PUBLISHES_PER_ITERATION = 8


def outbox_row(
    model: type[OutboxRow], message: Message, exchange: RabbitExchange, priority: int | None = None
) -> OutboxRow:
    """The row to add in the same session as the state change."""
    return model(
        id=message.id,
        exchange=exchange.name,
        routing_key=message.ROUTING_KEY,
        message_type=type(message).__name__,
        body=message.model_dump_json(),
        priority=priority,
        correlation_id=message.correlation_id,
    )


class OutboxRelay:
    """Publishes pending outbox rows in order; ``wake()`` after a commit publishes at once."""

    def __init__(
        self,
        broker: RabbitBroker,
        sessions: async_sessionmaker[AsyncSession],
        model: type[OutboxRow],
        exchanges: dict[str, RabbitExchange],
        *,
        poll_interval: float = 1.0,
        batch_size: int = 200,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self._broker = broker
        # A lock the service's writers share (e.g. one SQLite writer per process), taken
        # around the relay's own commit.
        self._write_lock = write_lock or contextlib.nullcontext()
        self._sessions = sessions
        self._model = model
        self._exchanges = exchanges
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self._model.__tablename__}")

    async def stop(self, grace: float = 30.0) -> None:
        """Let the loop finish its batch (a cancel mid-batch would publish it twice), then flush."""
        self._stopping = True
        self.wake()
        if self._task:
            try:
                async with asyncio.timeout(grace):
                    await self._task
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.flush()

    async def flush(self) -> int:
        """Publish everything pending now; returns how many were published."""
        total = 0
        async with self._lock:
            while published := await self._publish_batch():
                total += published
        return total

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self.flush()
                failures = 0
            except Exception as exc:
                failures += 1
                # One line per outage step, not a traceback every poll while the broker is down.
                log.warning(
                    "outbox relay: publish failed (%s: %s); retrying", type(exc).__name__, exc
                )
            delay = min(self._poll_interval * 2 ** min(failures, 4), 15.0)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands
            # together with a wake-up, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def _publish_batch(self) -> int:
        """Publish one batch concurrently (confirms awaited together), then mark it sent."""
        table = self._model.__table__
        async with self._sessions() as session:
            query = (
                select(table)
                .where(table.c.published_at.is_(None))
                .order_by(table.c.created_at)
                .limit(self._batch_size)
            )
            if session.bind.dialect.name == "postgresql":
                # Several replicas may relay at once; each takes rows nobody else holds.
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
            confirmed = [row.id for row, res in zip(rows, results, strict=True) if res is None]
            async with self._write_lock:
                if confirmed:
                    await session.execute(
                        update(table)
                        .where(table.c.id.in_(confirmed))
                        .values(published_at=datetime.now(UTC), attempts=table.c.attempts + 1)
                    )
                await session.commit()
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:  # unconfirmed rows stay pending and are retried on the next pass
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
