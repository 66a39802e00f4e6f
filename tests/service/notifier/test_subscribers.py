"""The notifier's subscribers on FastStream's in-memory broker (ports faked)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from faststream.rabbit import TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from prometheus_client import generate_latest

from mpr_notifier.application.broadcast import event_payload
from mpr_notifier.application.filters import EventFilter
from mpr_notifier.bootstrap import Container, bootstrap
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
from tests.unit.notifier.fakes import FakeJobs, FakeReceivers


@dataclass(frozen=True)
class Notifier:
    """A bootstrapped notifier and the fakes behind its webhook ports."""

    container: Container
    jobs: FakeJobs
    receivers: FakeReceivers


@pytest.fixture
def notifier() -> Notifier:
    settings = NotifierSettings(_env_file=None, MPR_ENV="test", NOTIFIER_INSTANCE_ID="svc-test")
    jobs, receivers = FakeJobs(), FakeReceivers()
    return Notifier(bootstrap(settings, targets=jobs, sender=receivers), jobs, receivers)


def metrics_text(notifier: Notifier) -> str:
    return generate_latest(notifier.container.metrics.registry).decode()


def completed(job_id: uuid.UUID) -> JobCompleted:
    return JobCompleted(job_id=job_id, outputs=[OutputFile(key="o.mp4", bucket="b", size_bytes=1)])


async def test_events_reach_sse_subscribers_typed_by_routing_key(notifier: Notifier) -> None:
    subscription = notifier.container.hub.subscribe(EventFilter())
    broker = notifier.container.broker
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
    assert 'mpr_notifier_events_received_total{event="job.progress"} 1.0' in metrics_text(notifier)


async def test_terminal_job_event_calls_the_webhook_once(notifier: Notifier) -> None:
    job = uuid.uuid4()
    notifier.jobs.add(job, "http://hooks.test/done")
    broker = notifier.container.broker
    done = completed(job)
    async with TestRabbitBroker(broker):
        await publish_event(broker, JobProgress(job_id=job, percent=10))
        await publish_event(broker, done)
    [(url, message_id, _body)] = notifier.receivers.sent
    assert (url, message_id) == ("http://hooks.test/done", str(done.id))
    assert "mpr_notifier_webhooks_sent_total 1.0" in metrics_text(notifier)


async def test_failed_webhook_is_dead_lettered_with_reason(notifier: Notifier) -> None:
    job = uuid.uuid4()
    notifier.jobs.add(job, "http://hooks.test/x", "failed")
    notifier.receivers.refuse("http://hooks.test/x", "rejected with HTTP 410")
    broker = notifier.container.broker
    dead: list[tuple[str, dict]] = []

    @broker.subscriber(dead_letter_queue(NOTIFIER_WEBHOOKS), DEAD_LETTER)
    async def dlq(body: dict, message: RabbitMessage) -> None:
        dead.append((body["job_id"], message.headers))

    async with TestRabbitBroker(broker):
        await publish_event(broker, JobFailed(job_id=job, reason="boom"))
    [(job_id, headers)] = dead
    assert job_id == str(job)
    assert "HTTP 410" in headers["x-mpr-error"]
    assert headers["x-mpr-error-type"] == "WebhookFailed"
    assert "mpr_notifier_webhooks_failed_total 1.0" in metrics_text(notifier)


async def test_malformed_event_is_dead_lettered_and_consumer_keeps_going(
    notifier: Notifier,
) -> None:
    subscription = notifier.container.hub.subscribe(EventFilter())
    broker = notifier.container.broker
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
