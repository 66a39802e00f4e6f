"""The hub: fan-out, filters, ring buffer, Last-Event-ID replay, overflow, shutdown."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mpr_notifier.application.filters import EventFilter
from mpr_notifier.application.hub import CloseReason, EventHub, Notification

ALL = EventFilter()


def publish(hub: EventHub, event: str = "job.progress", job_id: str | None = None):
    return hub.publish(id=str(uuid.uuid4()), event=event, data={"e": event}, job_id=job_id)


def drain(subscription) -> list[Notification]:
    """Everything already queued, without waiting."""
    items = []
    while subscription.pending:
        items.append(asyncio.run(subscription.next()))
    return items


async def take(subscription, n: int) -> list[Notification]:
    return [await asyncio.wait_for(subscription.next(), 5) for _ in range(n)]


async def test_each_subscriber_gets_matching_events_in_order() -> None:
    hub = EventHub()
    job = str(uuid.uuid4())
    everyone = hub.subscribe(ALL)
    only_job = hub.subscribe(EventFilter(job_id=job))
    only_done = hub.subscribe(EventFilter(patterns=("job.completed",)))
    first = publish(hub, "job.progress", job)
    other = publish(hub, "job.progress", str(uuid.uuid4()))
    done = publish(hub, "job.completed", job)
    assert [n.id for n in await take(everyone, 3)] == [first.id, other.id, done.id]
    assert [n.id for n in await take(only_job, 2)] == [first.id, done.id]
    assert [n.id for n in await take(only_done, 1)] == [done.id]
    assert first.seq < other.seq < done.seq
    assert only_done.pending == 0


async def test_a_waiting_subscriber_wakes_on_publish() -> None:
    hub = EventHub()
    subscription = hub.subscribe(ALL)
    waiter = asyncio.create_task(subscription.next())
    await asyncio.sleep(0)
    assert not waiter.done()
    sent = publish(hub)
    assert (await asyncio.wait_for(waiter, 5)).id == sent.id


def test_redelivered_event_is_published_once() -> None:
    hub = EventHub()
    subscription = hub.subscribe(ALL)
    event_id = str(uuid.uuid4())
    assert hub.publish(id=event_id, event="job.started", data={}) is not None
    assert hub.publish(id=event_id, event="job.started", data={}) is None
    assert subscription.pending == 1
    assert hub.buffered == 1


def test_ring_buffer_keeps_only_the_last_n() -> None:
    hub = EventHub(buffer_size=3)
    sent = [publish(hub) for _ in range(5)]
    assert hub.buffered == 3
    # Replay after the oldest kept event: the two after it.
    replay = hub.subscribe(ALL, last_event_id=sent[2].id)
    assert not replay.gap
    assert [n.id for n in drain(replay)] == [sent[3].id, sent[4].id]
    # An evicted id can no longer be found: the subscription reports a gap, replays nothing.
    evicted = hub.subscribe(ALL, last_event_id=sent[0].id)
    assert evicted.gap
    assert evicted.pending == 0


async def test_replay_respects_the_filter_and_then_goes_live() -> None:
    hub = EventHub()
    job = str(uuid.uuid4())
    seen = publish(hub, "job.started", job)
    publish(hub, "job.started", str(uuid.uuid4()))
    missed = publish(hub, "job.progress", job)
    subscription = hub.subscribe(EventFilter(job_id=job), last_event_id=seen.id)
    live = publish(hub, "job.completed", job)
    assert [n.id for n in await take(subscription, 2)] == [missed.id, live.id]
    assert subscription.last_id == live.id


def test_unknown_last_event_id_is_a_gap_not_a_replay() -> None:
    hub = EventHub()
    publish(hub)
    subscription = hub.subscribe(ALL, last_event_id="not-an-id-we-know")
    assert subscription.gap and subscription.pending == 0


async def test_slow_client_overflows_without_affecting_others() -> None:
    hub = EventHub(client_queue_size=2)
    slow = hub.subscribe(ALL)
    fast = hub.subscribe(ALL)
    first = publish(hub)
    assert (await fast.next()).id == first.id
    publish(hub)
    assert (await fast.next()) is not None
    publish(hub)  # slow now holds 2 and this one overflows it
    assert slow.closed is CloseReason.OVERFLOW
    assert slow.pending == 0  # its queue is freed at once
    assert await slow.next() is None
    assert hub.clients == 1  # dropped from the hub
    assert fast.closed is None and (await fast.next()) is not None
    more = publish(hub)
    assert (await fast.next()).id == more.id


async def test_close_ends_every_subscription() -> None:
    hub = EventHub()
    subscription = hub.subscribe(ALL)
    waiter = asyncio.create_task(subscription.next())
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(waiter, 5) is None
    assert subscription.closed is CloseReason.SHUTDOWN
    assert hub.clients == 0
    with pytest.raises(RuntimeError):
        hub.subscribe(ALL)


async def test_unsubscribe_stops_delivery() -> None:
    hub = EventHub()
    subscription = hub.subscribe(ALL)
    hub.unsubscribe(subscription)
    publish(hub)
    assert subscription.pending == 0 and hub.clients == 0


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventHub(buffer_size=0)
