"""The webhook use case: which events call which URL, and when the gateway must catch up first."""

from __future__ import annotations

import json
import uuid

import pytest

from mpr_notifier.application.broadcast import event_payload
from mpr_notifier.application.webhooks import (
    JobStateLagging,
    WebhookFailed,
    WebhookResult,
    Webhooks,
)
from mpr_shared.contracts import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    OutputFile,
)
from tests.unit.notifier.fakes import FakeJobs, FakeReceivers


def completed(job_id: uuid.UUID) -> JobCompleted:
    return JobCompleted(
        job_id=job_id, outputs=[OutputFile(key="a/out.mp4", bucket="out", size_bytes=10)]
    )


@pytest.fixture
def jobs() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def receivers() -> FakeReceivers:
    return FakeReceivers()


@pytest.fixture
def webhooks(jobs: FakeJobs, receivers: FakeReceivers) -> Webhooks:
    return Webhooks(jobs, receivers)


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (completed, "completed"),
        (lambda job: JobFailed(job_id=job, reason="boom"), "failed"),
        (lambda job: JobCancelled(job_id=job), "cancelled"),
    ],
)
async def test_terminal_events_call_the_webhook(
    make, status: str, jobs: FakeJobs, receivers: FakeReceivers, webhooks: Webhooks
) -> None:
    job, other = uuid.uuid4(), uuid.uuid4()
    jobs.add(job, "https://example.com/hook", status)
    jobs.add(other, "https://example.com/other", status)
    event = make(job)
    assert await webhooks.deliver(event) is WebhookResult.SENT
    [(url, message_id, body)] = receivers.sent
    assert url == "https://example.com/hook"  # the event's job's URL, not another job's
    assert message_id == str(event.id)
    assert json.loads(body) == event_payload(event)


async def test_progress_is_not_a_webhook(
    jobs: FakeJobs, receivers: FakeReceivers, webhooks: Webhooks
) -> None:
    job = uuid.uuid4()
    jobs.add(job, "https://example.com/hook", "running")
    event = JobProgress(job_id=job, percent=50)
    assert await webhooks.deliver(event) is WebhookResult.NOT_TERMINAL
    assert jobs.lookups == [] and receivers.sent == []


@pytest.mark.parametrize("known", [True, False])
async def test_job_without_url_sends_nothing(
    known: bool, jobs: FakeJobs, receivers: FakeReceivers, webhooks: Webhooks
) -> None:
    job = uuid.uuid4()
    if known:
        jobs.add(job, None)
    assert await webhooks.deliver(completed(job)) is WebhookResult.NO_URL
    assert jobs.lookups == [job] and receivers.sent == []


async def test_delivery_failure_propagates_for_dead_lettering(
    jobs: FakeJobs, receivers: FakeReceivers, webhooks: Webhooks
) -> None:
    job = uuid.uuid4()
    jobs.add(job, "https://example.com/h")
    receivers.refuse("https://example.com/h", "rejected with HTTP 404")
    with pytest.raises(WebhookFailed, match="HTTP 404"):
        await webhooks.deliver(completed(job))


async def test_webhook_waits_until_the_gateway_applied_the_event(
    jobs: FakeJobs, receivers: FakeReceivers, webhooks: Webhooks
) -> None:
    job = uuid.uuid4()
    jobs.add(job, "https://example.com/h", "running")
    with pytest.raises(JobStateLagging, match=f"job {job} is still running in the gateway"):
        await webhooks.deliver(completed(job))
    assert receivers.sent == []


@pytest.mark.parametrize(("status", "attempt"), [("cancelled", 1), ("completed", 2)])
async def test_webhook_never_contradicts_the_job_state(
    status: str, attempt: int, jobs: FakeJobs, receivers: FakeReceivers, webhooks: Webhooks
) -> None:
    job = uuid.uuid4()
    jobs.add(job, "https://example.com/h", status, attempt)  # cancelled meanwhile / newer attempt
    assert await webhooks.deliver(completed(job)) is WebhookResult.STALE
    assert receivers.sent == []


async def test_a_database_error_is_raised_for_a_retry(
    jobs: FakeJobs, receivers: FakeReceivers, webhooks: Webhooks
) -> None:
    job = uuid.uuid4()
    jobs.add(job, "https://example.com/h")
    jobs.down = ConnectionError("database is down")
    with pytest.raises(ConnectionError):
        await webhooks.deliver(completed(job))
    assert receivers.sent == []
