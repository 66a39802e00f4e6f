"""Webhooks end to end: the job's URL from the database, signed POSTs, retries, dead letters."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from standardwebhooks import Webhook

from mpr_notifier.adapters.db import SqlWebhookTargets
from mpr_notifier.application.broadcast import event_payload
from mpr_notifier.bootstrap import bootstrap
from mpr_notifier.settings import NotifierSettings
from mpr_shared.contracts import JobCompleted, JobFailed, JobProgress, OutputFile
from mpr_shared.db import engine_for, session_factory
from mpr_shared.messaging import publish_event
from tests.integration.notifier.conftest import (
    WEBHOOKS_DLQ,
    Receiver,
    Running,
    add_job,
    dead_letter,
    metric,
    metric_reaches,
)


async def test_completed_job_webhook_is_signed_and_retried_after_500(
    notifier: Running, receiver: Receiver, publisher
) -> None:
    job = await add_job(notifier.database_url, f"{receiver.url}/flaky")
    done = JobCompleted(
        job_id=job, outputs=[OutputFile(key="a/out.mp4", bucket="out", size_bytes=42)]
    )
    sent = await metric(notifier, "mpr_notifier_webhooks_sent_total")
    await publish_event(publisher, JobProgress(job_id=job, percent=99))  # no webhook for this
    await publish_event(publisher, done)
    attempts = await receiver.wait_for(str(done.id), 2)  # 500 first, then 204
    verifier = Webhook(notifier.settings.webhook_secret.get_secret_value())
    for path, headers, body in attempts:
        assert path == "/flaky"
        assert verifier.verify(body, headers) == event_payload(done)
    assert json.loads(attempts[1][2])["type"] == "JobCompleted"
    await metric_reaches(notifier, "mpr_notifier_webhooks_sent_total", sent + 1)
    assert len(receiver.with_id(str(done.id))) == 2  # success ends the retries


async def test_webhook_that_keeps_failing_is_dead_lettered_with_reason(
    notifier: Running, receiver: Receiver, publisher, amqp_url: str
) -> None:
    job = await add_job(notifier.database_url, f"{receiver.url}/down", status="failed")
    failed = JobFailed(job_id=job, reason="ffmpeg exited 1")
    given_up = await metric(notifier, "mpr_notifier_webhooks_failed_total")
    await publish_event(publisher, failed)
    attempts = await receiver.wait_for(str(failed.id), notifier.settings.webhook_max_attempts)
    assert {path for path, _, _ in attempts} == {"/down"}
    message = await dead_letter(amqp_url, WEBHOOKS_DLQ, str(failed.id))
    assert "failed after 3 attempts: HTTP 503" in message.headers["x-mpr-error"]
    assert json.loads(message.body)["job_id"] == str(job)
    assert await metric(notifier, "mpr_notifier_webhooks_failed_total") == given_up + 1


def settings_for(database_url: str) -> NotifierSettings:
    return NotifierSettings(_env_file=None, MPR_ENV="test", DATABASE_URL=database_url)


async def test_sql_targets_read_the_jobs_webhook_url(database_url: str) -> None:
    """On SQLite and PostgreSQL (as mpr_notifier): the URL the gateway stored, None for none
    or unknown."""
    with_url = await add_job(database_url, "https://hooks.example.com/a")
    without = await add_job(database_url, None)
    engine = engine_for(settings_for(database_url))
    try:
        targets = SqlWebhookTargets(session_factory(engine))
        await targets.ping()
        target = await targets.webhook_target(with_url)
        assert (target.url, target.status, target.attempt) == (
            "https://hooks.example.com/a",
            "completed",
            1,
        )
        assert (await targets.webhook_target(without)).url is None
        assert await targets.webhook_target(uuid.uuid4()) is None
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_notifier_acts_as_its_role_and_cannot_write_jobs(database_url: str) -> None:
    container = bootstrap(settings_for(database_url))
    try:
        async with container.engine.connect() as connection:
            assert await connection.scalar(text("SELECT current_user")) == "mpr_notifier"
            with pytest.raises(DBAPIError, match="permission denied for table jobs"):
                await connection.execute(text("UPDATE jobs SET status = 'failed'"))
    finally:
        await container.engine.dispose()
        await container.http.aclose()
