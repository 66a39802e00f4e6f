"""The transcoder's subscribers and publishers on FastStream's in-memory broker."""

from __future__ import annotations

from pathlib import Path

from faststream.rabbit import RabbitQueue, TestRabbitBroker

from mpr_shared.contracts import CancelJob, ProcessMedia
from mpr_shared.topology import COMMANDS, DEAD_LETTER, EVENTS, TRANSCODER_JOBS
from mpr_transcoder.bootstrap import Container, bootstrap
from mpr_transcoder.settings import TranscoderSettings
from tests.unit.transcoder.fakes import FakeJobRows, FakeRunner, FakeStorage, make_job


def settings_for(tmp_path: Path, **env: str) -> TranscoderSettings:
    return TranscoderSettings(
        _env_file=None,
        AMQP_URL="amqp://guest:guest@127.0.0.1:5672/",
        TRANSCODER_WORK_DIR=str(tmp_path / "work"),
        **env,
    )


def jobs_total(container: Container, outcome: str) -> float | None:
    registry = container.metrics.registry
    return registry.get_sample_value("mpr_transcoder_jobs_total", {"outcome": outcome})


def wire(tmp_path: Path):
    settings = settings_for(tmp_path, MAX_DELIVERIES="2", RETRY_BACKOFF_SECONDS="0")
    storage = FakeStorage()
    container = bootstrap(
        settings,
        instance="replica-test",
        storage=storage,
        runner=FakeRunner(),
        rows=FakeJobRows(),
    )
    broker = container.broker
    events: list[dict] = []
    dead: list[dict] = []

    @broker.subscriber(RabbitQueue("test.job-events", routing_key="job.*"), EVENTS)
    async def collect(body: dict) -> None:
        events.append(body)

    @broker.subscriber(RabbitQueue("test.dlq", routing_key=TRANSCODER_JOBS.name), DEAD_LETTER)
    async def collect_dead(body: dict) -> None:
        dead.append(body)

    return broker, container, events, dead, storage


async def test_a_job_command_runs_and_its_events_are_published(tmp_path):
    broker, container, events, dead, storage = wire(tmp_path)
    job = make_job(preset="h264-480p")
    async with TestRabbitBroker(broker) as br:
        await br.publish(job.model_dump(mode="json"), exchange=COMMANDS, routing_key="job.run")
        cancelled = make_job()
        await br.publish(
            CancelJob(job_id=cancelled.job_id).model_dump(mode="json"),
            exchange=COMMANDS,
            routing_key="job.cancel",
        )
        await br.publish(
            cancelled.model_dump(mode="json"), exchange=COMMANDS, routing_key="job.run"
        )
        await br.publish({"job_id": "not-a-uuid"}, exchange=COMMANDS, routing_key="job.run")
    assert events[0]["worker"] == "replica-test"  # JobStarted names this replica
    completed = [e for e in events if e["job_id"] == str(job.job_id)][-1]
    assert completed["outputs"][0]["key"] == job.output_key
    assert storage.keys() == [job.output_key]
    # Cancelled while queued: it never ran, and the gateway hears it ended.
    (skipped,) = [e for e in events if e["job_id"] == str(cancelled.job_id)]
    assert set(skipped) >= {"job_id", "reason"} and "worker" not in skipped
    assert skipped["reason"] == "cancelled by user"
    assert len(dead) == 1 and dead[0] == {"job_id": "not-a-uuid"}  # malformed → DLQ
    assert jobs_total(container, "completed") == 1
    assert jobs_total(container, "skipped") == 1


async def test_transient_failures_are_republished_then_dead_lettered(tmp_path):
    broker, container, events, dead, storage = wire(tmp_path)
    storage.fail.add("download")
    job = make_job()
    async with TestRabbitBroker(broker) as br:
        await br.publish(job.model_dump(mode="json"), exchange=COMMANDS, routing_key="job.run")
    assert len(dead) == 1 and ProcessMedia.model_validate(dead[0]).job_id == job.job_id
    assert events[-1]["reason"].startswith("gave up after 2 deliveries: S3 download failed")
    assert events[-1]["retryable"] is True
    assert jobs_total(container, "retried") == 1


def test_asyncapi_documents_every_message_the_transcoder_sends_and_takes(tmp_path):
    import json

    from faststream.specification import AsyncAPI

    broker = bootstrap(settings_for(tmp_path)).broker
    spec = json.loads(AsyncAPI(broker, title="transcoder").to_specification().to_json())
    channels = set(spec["channels"])
    for name in ("JobStarted", "JobProgress", "JobCompleted", "JobFailed", "JobCancelled"):
        assert f"transcoder:{name}" in channels
        assert spec["channels"][f"transcoder:{name}"]["bindings"]["amqp"]["exchange"]["name"] == (
            "mpr.events"
        )
    assert {"transcoder:ProcessMedia", "transcoder:CancelJob"} <= channels
