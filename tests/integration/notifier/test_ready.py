"""Readiness reflects what the notifier can still do: SSE needs RabbitMQ, only webhooks need
the database, so a database outage degrades it and keeps it in service."""

from __future__ import annotations

from mpr_notifier.bootstrap import bootstrap, running
from mpr_notifier.settings import NotifierSettings
from tests.integration.notifier.conftest import free_port


async def test_database_down_is_degraded_not_unavailable(amqp_url: str) -> None:
    nowhere = f"postgresql://mpr@127.0.0.1:{free_port()}/mpr"  # nothing listens there
    settings = NotifierSettings(
        _env_file=None, MPR_ENV="test", AMQP_URL=amqp_url, DATABASE_URL=nowhere
    )
    async with running(bootstrap(settings)) as notifier:
        readiness = await notifier.health.readiness()
    assert (readiness.status, readiness.http_status) == ("degraded", 200)
    assert readiness.checks["rabbitmq"].ok and readiness.checks["rabbitmq"].critical
    database = readiness.checks["database"]
    assert (database.ok, database.critical) == (False, False)
    assert database.detail.startswith("ConnectionRefusedError")
