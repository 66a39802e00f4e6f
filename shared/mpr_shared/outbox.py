"""Transactional outbox: a state change and the messages it causes commit together; a relay
publishes them afterwards with confirms. A crash between the two only delays a publish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from faststream.rabbit import RabbitBroker, RabbitExchange
from sqlalchemy import ColumnElement, Row, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpr_shared.contracts import Message
from mpr_shared.db.models import Base
from mpr_shared.messaging import (
    PublishProperties,
    exchange_of,
    message_priority,
    publish_properties,
)
from mpr_shared.topology import COMMANDS, EVENTS

log = logging.getLogger(__name__)

# Publishes handed over per event-loop iteration: fewer than aiormq's outgoing frame queue
# holds (Connection.FRAME_BUFFER_SIZE = 10), leaving room for consumers' acks.
PUBLISHES_PER_ITERATION = 8
EXCHANGES: Mapping[str, RabbitExchange] = {e.name: e for e in (COMMANDS, EVENTS)}


def outbox_row(message: Message) -> dict[str, Any]:
    """The one outbox row builder: an outbox table's columns for ``message``."""
    # A plain dict, inserted in the unit of work's transaction: one executemany for many rows
    # (an ORM object per row costs more than the insert).
    return {
        "id": message.id,
        "exchange": exchange_of(message).name,
        "routing_key": message.ROUTING_KEY,
        "message_type": type(message).__name__,
        "body": message.model_dump_json(),
        "priority": message_priority(message),
        "correlation_id": message.correlation_id,
        "created_at": datetime.now(UTC),
        "published_at": None,
        "attempts": 0,
    }


class PendingMessage(Protocol):
    """An outbox row waiting to be published (the columns ``outbox_row`` filled)."""

    @property
    def id(self) -> UUID: ...
    @property
    def exchange(self) -> str: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def message_type(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


class OutboxPublisher(Protocol):
    """Publishes one outbox row persistently; returns once the broker confirmed it."""

    async def publish(self, row: PendingMessage) -> None: ...


def row_properties(row: PendingMessage) -> PublishProperties:
    """The publish properties of an outbox row (what ``message_properties`` gives its message)."""
    return publish_properties(
        row.id,
        row.message_type,
        correlation_id=row.correlation_id,
        priority=row.priority,
        timestamp=row.created_at,
    )


class BrokerPublisher:
    """OutboxPublisher over FastStream's ``broker.publish`` (waits for the confirm)."""

    def __init__(
        self, broker: RabbitBroker, exchanges: Mapping[str, RabbitExchange] = EXCHANGES
    ) -> None:
        self._broker = broker
        self._exchanges = exchanges

    async def publish(self, row: PendingMessage) -> None:
        await self._broker.publish(
            row.body.encode(),
            exchange=self._exchanges[row.exchange],
            routing_key=row.routing_key,
            **row_properties(row).kwargs(),
        )


class OutboxRelay:
    """Publishes pending outbox rows in order; ``wake()`` after a commit publishes at once."""

    def __init__(
        self,
        publisher: OutboxPublisher,
        sessions: async_sessionmaker[AsyncSession],
        model: type[Base],
        *,
        poll_interval: float = 1.0,
        batch_size: int = 200,
        write_lock: asyncio.Lock | None = None,
        rows: ColumnElement[bool] | None = None,
    ) -> None:
        """``rows``: which rows this relay dispatches (a table's rows may go to several
        targets, each relay with its own publisher and its own retry backoff)."""
        if not isinstance(model.__table__, Table):
            raise TypeError(f"{model.__name__} is not mapped to a table")
        self._publisher = publisher
        self._table = model.__table__
        self._sessions = sessions
        # A lock the service's writers share (e.g. one SQLite writer per process), taken
        # around the relay's own commit.
        self._write_lock: contextlib.AbstractAsyncContextManager[Any] = (
            write_lock or contextlib.nullcontext()
        )
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._rows = rows
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        # created_at of the oldest row the last pass found unpublished (None: it found none).
        self._oldest_pending: datetime | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def lag_seconds(self) -> float:
        """Age of the oldest row the relay last found unpublished; 0 when it found none."""
        oldest = self._oldest_pending
        if oldest is None:
            return 0.0
        if oldest.tzinfo is None:  # SQLite hands back naive datetimes; they are UTC
            oldest = oldest.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self._table.name}")

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
        async with self._sessions() as session:
            rows = await self._pending(session)
            self._oldest_pending = rows[0].created_at if rows else None
            if not rows:
                return 0
            results = await self._publish_in_waves(rows)
            confirmed = [row.id for row, res in zip(rows, results, strict=True) if res is None]
            async with self._write_lock:
                if confirmed:
                    await session.execute(
                        update(self._table)
                        .where(self._table.c.id.in_(confirmed))
                        .values(published_at=datetime.now(UTC), attempts=self._table.c.attempts + 1)
                    )
                await session.commit()
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:  # unconfirmed rows stay pending and are retried on the next pass
            raise failures[0]
        return len(rows)

    async def _pending(self, session: AsyncSession) -> Sequence[Row[Any]]:
        table = self._table
        query = (
            select(table)
            .where(table.c.published_at.is_(None))
            .where(*(() if self._rows is None else (self._rows,)))
            .order_by(table.c.created_at)
            .limit(self._batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            # Several replicas may relay at once; each takes rows nobody else holds.
            query = query.with_for_update(skip_locked=True)
        return (await session.execute(query)).all()

    async def _publish_in_waves(self, rows: Sequence[Row[Any]]) -> list[BaseException | None]:
        publishes: list[asyncio.Future[None]] = []
        for start in range(0, len(rows), PUBLISHES_PER_ITERATION):
            wave = rows[start : start + PUBLISHES_PER_ITERATION]
            publishes += [asyncio.ensure_future(self._publisher.publish(row)) for row in wave]
            await asyncio.sleep(0)  # the connection's writer sends this wave first
        return await asyncio.gather(*publishes, return_exceptions=True)
