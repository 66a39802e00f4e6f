"""A webhook whose job state lags in the gateway: retried through the dead-letter middleware
(back to its queue, type header kept, so the same handler takes it), delivered once when the
gateway catches up, and dead-lettered with the reason after a bounded number of tries if it
never does. Real RabbitMQ, a real receiver on 127.0.0.1, the jobs row in a real database."""

from __future__ import annotations

import asyncio

from mpr_shared.contracts import JobCompleted, JobFailed, OutputFile
from mpr_shared.messaging import ATTEMPTS_HEADER, HANDLER_ATTEMPTS, publish_event
from tests.integration.notifier.conftest import (
    WEBHOOKS_DLQ,
    Receiver,
    Running,
    add_job,
    dead_letter,
    dead_letter_ids,
    metric,
    metric_reaches,
    set_job_status,
)

DEFERRED = "mpr_notifier_webhooks_deferred_total"
SENT = "mpr_notifier_webhooks_sent_total"


async def test_lagging_job_state_is_retried_and_the_webhook_delivered_once(
    notifier: Running, receiver: Receiver, publisher, amqp_url: str
) -> None:
    job = await add_job(notifier.database_url, f"{receiver.url}/lagging", status="running")
    done = JobCompleted(job_id=job, outputs=[OutputFile(key="o.mp4", bucket="b", size_bytes=1)])
    deferred, sent = await metric(notifier, DEFERRED), await metric(notifier, SENT)
    await publish_event(publisher, done)
    # The transcoder's event reached the notifier before the gateway applied it.
    await metric_reaches(notifier, DEFERRED, deferred + 1)
    assert receiver.with_id(str(done.id)) == []
    await set_job_status(notifier.database_url, job, "completed")
    [(path, headers, _body)] = await receiver.wait_for(str(done.id), 1)
    assert path == "/lagging" and headers["webhook-id"] == str(done.id)
    await metric_reaches(notifier, SENT, sent + 1)
    await asyncio.sleep(1.0)  # a second delivery, had there been one, would be in by now
    assert len(receiver.with_id(str(done.id))) == 1
    assert await metric(notifier, SENT) == sent + 1
    assert str(done.id) not in await dead_letter_ids(amqp_url, WEBHOOKS_DLQ)


async def test_a_gateway_that_never_catches_up_ends_in_the_dlq_with_the_reason(
    notifier: Running, receiver: Receiver, publisher, amqp_url: str
) -> None:
    job = await add_job(notifier.database_url, f"{receiver.url}/never", status="running")
    failed = JobFailed(job_id=job, reason="ffmpeg exited 1")
    deferred = await metric(notifier, DEFERRED)
    await publish_event(publisher, failed)
    message = await dead_letter(amqp_url, WEBHOOKS_DLQ, str(failed.id))
    assert message.headers["x-mpr-error"] == (
        f"JobStateLagging: job {job} is still running in the gateway"
    )
    assert message.headers["x-mpr-error-type"] == "JobStateLagging"
    assert message.headers["x-mpr-queue"] == "mpr.notifier.webhooks"
    assert message.headers["x-mpr-type"] == "JobFailed"  # every retry kept its type
    assert message.headers[ATTEMPTS_HEADER] == HANDLER_ATTEMPTS - 1
    assert await metric(notifier, DEFERRED) == deferred + HANDLER_ATTEMPTS
    assert receiver.with_id(str(failed.id)) == []
