"""The transcoder's subscribers and publishers on FastStream's in-memory broker."""

from __future__ import annotations

from pathlib import Path

from faststream.rabbit import RabbitQueue, TestRabbitBroker

from mpr_shared.contracts import CancelJob, ProcessMedia
from mpr_shared.topology import COMMANDS, DEAD_LETTER, EVENTS, TRANSCODER_JOBS
from mpr_transcoder.app import Runtime, build_broker
from mpr_transcoder.broker import BrokerEventPublisher, BrokerRedelivery
from mpr_transcoder.commands import Limits
from mpr_transcoder.core import CoreConfig, JobCore
from mpr_transcoder.settings import TranscoderSettings
from mpr_transcoder.worker import JobWorker, WorkerConfig
from tests.unit.transcoder.fakes import FakeJobState, FakeRunner, FakeStorage, make_job


def wire(tmp_path: Path):
    settings = TranscoderSettings(AMQP_URL="amqp://guest:guest@127.0.0.1:5672/")
    runtime = Runtime(settings, instance="replica-test")
    broker = build_broker(settings, runtime)
    events: list[dict] = []
    dead: list[dict] = []

    @broker.subscriber(RabbitQueue("test.job-events", routing_key="job.*"), EVENTS)
    async def collect(body: dict) -> None:
        events.append(body)

    @broker.subscriber(RabbitQueue("test.dlq", routing_key=TRANSCODER_JOBS.name), DEAD_LETTER)
    async def collect_dead(body: dict) -> None:
        dead.append(body)

    storage = FakeStorage()
    publisher = BrokerEventPublisher(broker)
    runtime.worker = JobWorker(
        core=JobCore(
            config=CoreConfig(scratch=tmp_path, limits=Limits()),
            storage=storage,
            runner=FakeRunner(),
            publisher=publisher,
            worker=runtime.instance,
        ),
        publisher=publisher,
        state=FakeJobState(),
        redelivery=BrokerRedelivery(broker),
        config=WorkerConfig(max_deliveries=2, retry_backoff_seconds=0),
    )
    return broker, runtime, events, dead, storage


async def test_a_job_command_runs_and_its_events_are_published(tmp_path):
    broker, runtime, events, dead, storage = wire(tmp_path)
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
    assert runtime.metrics.jobs.labels("completed")._value.get() == 1
    assert runtime.metrics.jobs.labels("skipped")._value.get() == 1


async def test_transient_failures_are_republished_then_dead_lettered(tmp_path):
    broker, runtime, events, dead, storage = wire(tmp_path)
    storage.fail.add("download")
    job = make_job()
    async with TestRabbitBroker(broker) as br:
        await br.publish(job.model_dump(mode="json"), exchange=COMMANDS, routing_key="job.run")
    assert len(dead) == 1 and ProcessMedia.model_validate(dead[0]).job_id == job.job_id
    assert events[-1]["reason"].startswith("gave up after 2 deliveries: S3 download failed")
    assert events[-1]["retryable"] is True
    assert runtime.metrics.jobs.labels("retried")._value.get() == 1


def test_asyncapi_documents_every_message_the_transcoder_sends_and_takes():
    import json

    from faststream.specification import AsyncAPI

    broker = build_broker(TranscoderSettings(AMQP_URL="amqp://guest:guest@127.0.0.1:5672/"))
    spec = json.loads(AsyncAPI(broker, title="transcoder").to_specification().to_json())
    channels = set(spec["channels"])
    for name in ("JobStarted", "JobProgress", "JobCompleted", "JobFailed", "JobCancelled"):
        assert f"transcoder:{name}" in channels
        assert spec["channels"][f"transcoder:{name}"]["bindings"]["amqp"]["exchange"]["name"] == (
            "mpr.events"
        )
    assert {"transcoder:ProcessMedia", "transcoder:CancelJob"} <= channels
