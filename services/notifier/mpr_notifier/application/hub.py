"""The in-process hub: fans events out to connected clients and keeps a replay buffer.

It knows nothing of HTTP or AMQP. Every client gets a bounded queue; one that falls behind
is closed with ``overflow`` instead of slowing the others or growing memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mpr_notifier.application.filters import EventFilter


@dataclass(frozen=True)
class Notification:
    """One event as clients see it."""

    seq: int  # position in this replica's stream; strictly increasing
    id: str  # the event's message id; the SSE id, the same on every replica
    event: str  # routing key, e.g. job.completed
    data: dict[str, Any]
    job_id: str | None = None
    asset_id: str | None = None


class CloseReason(StrEnum):
    OVERFLOW = "overflow"
    SHUTDOWN = "shutdown"


class Subscription:
    """One client's view of the stream: replayed backlog first, then live events."""

    def __init__(
        self, event_filter: EventFilter, backlog: list[Notification], capacity: int, *, gap: bool
    ) -> None:
        self.filter = event_filter
        self.gap = gap  # the client's Last-Event-ID was not in the buffer: it may have missed some
        self.closed: CloseReason | None = None
        self.last_id: str | None = None
        self._backlog = deque(backlog)
        self._queue: deque[Notification] = deque()
        self._capacity = capacity
        self._wakeup = asyncio.Event()

    def offer(self, notification: Notification) -> bool:
        """Queue a live event; False (and the subscription closed) when the client lags."""
        if self.closed is not None:
            return False
        if len(self._queue) >= self._capacity:
            self.close(CloseReason.OVERFLOW)
            return False
        self._queue.append(notification)
        self._wakeup.set()
        return True

    def close(self, reason: CloseReason) -> None:
        if self.closed is None:
            self.closed = reason
            self._backlog.clear()
            self._queue.clear()
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._backlog) + len(self._queue)

    async def next(self) -> Notification | None:
        """The next event, or None once the subscription is closed."""
        while True:
            if self._backlog:
                item = self._backlog.popleft()
            elif self._queue:
                item = self._queue.popleft()
            elif self.closed is not None:
                return None
            else:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self.last_id = item.id
            return item

    async def __aiter__(self) -> AsyncIterator[Notification]:
        while (item := await self.next()) is not None:
            yield item


class EventHub:
    """Publishes each event once to every matching subscription; remembers the last N."""

    def __init__(self, buffer_size: int = 10_000, client_queue_size: int = 1_000) -> None:
        if buffer_size < 1 or client_queue_size < 1:
            raise ValueError("buffer_size and client_queue_size must be at least 1")
        self._buffer: deque[Notification] = deque()
        self._buffer_size = buffer_size
        self._seq_by_id: dict[str, int] = {}
        self._client_queue_size = client_queue_size
        self._subscriptions: set[Subscription] = set()
        self._seq = 0
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def publish(
        self,
        *,
        id: str,
        event: str,
        data: dict[str, Any],
        job_id: str | None = None,
        asset_id: str | None = None,
    ) -> Notification | None:
        """Record and fan out one event; None if this id was already published (a redelivery)."""
        if id in self._seq_by_id:
            return None
        self._seq += 1
        notification = Notification(self._seq, id, event, data, job_id, asset_id)
        if len(self._buffer) >= self._buffer_size:
            del self._seq_by_id[self._buffer.popleft().id]
        self._buffer.append(notification)
        self._seq_by_id[id] = notification.seq
        for subscription in list(self._subscriptions):
            if subscription.filter.matches(event, job_id, asset_id) and not subscription.offer(
                notification
            ):
                self._subscriptions.discard(subscription)
        return notification

    def subscribe(
        self, event_filter: EventFilter, last_event_id: str | None = None
    ) -> Subscription:
        """A new subscription; with last_event_id, buffered matching events after it come first."""
        if self.closed:
            raise RuntimeError("the hub is closed")
        after = self._seq_by_id.get(last_event_id) if last_event_id else None
        backlog = []
        if after is not None:
            backlog = [
                n
                for n in self._buffer
                if n.seq > after and event_filter.matches(n.event, n.job_id, n.asset_id)
            ]
        gap = bool(last_event_id) and after is None
        subscription = Subscription(event_filter, backlog, self._client_queue_size, gap=gap)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every subscription (server shutdown); clients reconnect with Last-Event-ID."""
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.close(CloseReason.SHUTDOWN)
        self._subscriptions.clear()
