"""The notifier's subscribers on FastStream's in-memory broker (ports faked)."""

from __future__ import annotations

import uuid

import pytest
from faststream.rabbit import TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from mpr_notifier.app import build_broker
from mpr_notifier.filters import EventFilter
from mpr_notifier.handlers import event_payload
from mpr_notifier.runtime import Runtime
from mpr_notifier.settings import NotifierSettings
from mpr_shared.contracts import (
    AssetRegistered,
    JobCompleted,
    JobFailed,
    JobProgress,
    OutputFile,
)
from mpr_shared.messaging import publish_event
from mpr_shared.topology import (
    DEAD_LETTER,
    EVENTS,
    NOTIFIER_WEBHOOKS,
    dead_letter_queue,
    live_dead_letter_queue,
)
from tests.unit.notifier.fakes import FakeSender, FakeTargets


@pytest.fixture
def runtime() -> Runtime:
    runtime = Runtime.create(NotifierSettings(_env_file=None, NOTIFIER_INSTANCE_ID="svc-test"))
    runtime.targets = FakeTargets()
    runtime.sender = FakeSender()
    return runtime


def completed(job_id: uuid.UUID) -> JobCompleted:
    return JobCompleted(job_id=job_id, outputs=[OutputFile(key="o.mp4", bucket="b", size_bytes=1)])


async def test_events_reach_sse_subscribers_typed_by_routing_key(runtime: Runtime) -> None:
    subscription = runtime.hub.subscribe(EventFilter())
    broker = build_broker(runtime.settings, runtime)
    job, asset = uuid.uuid4(), uuid.uuid4()
    events = [
        JobProgress(job_id=job, percent=40),
        AssetRegistered(
            asset_id=asset, bucket="in", key="a.mp4", size_bytes=5, etag="e", media_type="video"
        ),
        completed(job),
    ]
    async with TestRabbitBroker(broker):
        for event in events:
            await publish_event(broker, event)
    received = [await subscription.next() for _ in events]
    assert [(n.event, n.id) for n in received] == [(e.ROUTING_KEY, str(e.id)) for e in events]
    assert [n.data for n in received] == [event_payload(e) for e in events]
    assert received[1].asset_id == str(asset) and received[2].job_id == str(job)
    metrics = runtime.metrics.render().decode()
    assert 'mpr_notifier_events_received_total{event="job.progress"} 1.0' in metrics


async def test_terminal_job_event_calls_the_webhook_once(runtime: Runtime) -> None:
    job = uuid.uuid4()
    runtime.targets.urls[job] = "http://hooks.test/done"
    broker = build_broker(runtime.settings, runtime)
    done = completed(job)
    async with TestRabbitBroker(broker):
        await publish_event(broker, JobProgress(job_id=job, percent=10))
        await publish_event(broker, done)
    [(url, message_id, _body)] = runtime.sender.sent
    assert (url, message_id) == ("http://hooks.test/done", str(done.id))
    assert "mpr_notifier_webhooks_sent_total 1.0" in runtime.metrics.render().decode()


async def test_failed_webhook_is_dead_lettered_with_reason(runtime: Runtime) -> None:
    job = uuid.uuid4()
    runtime.targets.urls[job] = "http://hooks.test/x"
    runtime.targets.states[job] = ("failed", 1)
    runtime.sender.fail = "webhook to http://hooks.test/x rejected with HTTP 410"
    broker = build_broker(runtime.settings, runtime)
    dead: list[tuple[str, dict]] = []

    @broker.subscriber(dead_letter_queue(NOTIFIER_WEBHOOKS), DEAD_LETTER)
    async def dlq(body: dict, message: RabbitMessage) -> None:
        dead.append((body["job_id"], message.headers))

    async with TestRabbitBroker(broker):
        await publish_event(broker, JobFailed(job_id=job, reason="boom"))
    [(job_id, headers)] = dead
    assert job_id == str(job)
    assert "HTTP 410" in headers["x-mpr-error"]
    assert "mpr_notifier_webhooks_failed_total 1.0" in runtime.metrics.render().decode()


async def test_malformed_event_is_dead_lettered_and_consumer_keeps_going(runtime: Runtime) -> None:
    subscription = runtime.hub.subscribe(EventFilter())
    broker = build_broker(runtime.settings, runtime)
    dead: list[dict] = []

    @broker.subscriber(live_dead_letter_queue("notifier"), DEAD_LETTER)
    async def dlq(message: RabbitMessage) -> None:
        dead.append(message.headers)

    async with TestRabbitBroker(broker):
        await broker.publish({"percent": "lots"}, exchange=EVENTS, routing_key="asset.probed")
        await broker.publish({"whatever": 1}, exchange=EVENTS, routing_key="asset.renamed")
        ok = JobProgress(job_id=uuid.uuid4(), percent=1)
        await publish_event(broker, ok)
    headers, unknown = dead
    assert "probe_status: Field required" in headers["x-mpr-error"]
    assert headers["x-mpr-queue"] == "mpr.notifier.live.svc-test"
    # A type no handler takes is dead-lettered with its reason, never acked in silence.
    assert unknown["x-mpr-error"] == (
        "no handler for type 'asset.renamed' on queue mpr.notifier.live.svc-test"
    )
    assert unknown["x-mpr-error-type"] == "SubscriberNotFound"
    assert subscription.pending == 1  # only the valid event
    assert (await subscription.next()).id == str(ok.id)
