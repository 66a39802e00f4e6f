"""The transcoder's subscribers and publishers on FastStream's in-memory broker."""

from __future__ import annotations

from pathlib import Path

from faststream.rabbit import RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from mpr_shared.contracts import CancelJob, JobStatus, ProcessMedia
from mpr_shared.messaging import ERROR_HEADER, ERROR_TYPE_HEADER
from mpr_shared.topology import COMMANDS, DEAD_LETTER, EVENTS, TRANSCODER_JOBS
from mpr_transcoder.application.ports import JobRow
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


class Wired:
    """A bootstrapped replica with fake ports, and what it sent to the events and the DLQ."""

    def __init__(self, tmp_path: Path, runner: FakeRunner | None = None) -> None:
        settings = settings_for(tmp_path, MAX_DELIVERIES="2", RETRY_BACKOFF_SECONDS="0")
        self.storage = FakeStorage()
        self.rows = FakeJobRows()
        self.container = bootstrap(
            settings,
            instance="replica-test",
            storage=self.storage,
            runner=runner or FakeRunner(),
            rows=self.rows,
        )
        self.broker = self.container.broker
        self.events: list[dict] = []
        self.dead: list[tuple[dict, dict]] = []

        @self.broker.subscriber(RabbitQueue("test.job-events", routing_key="job.*"), EVENTS)
        async def collect(body: dict) -> None:
            self.events.append(body)

        dlq = RabbitQueue("test.dlq", routing_key=TRANSCODER_JOBS.name)

        @self.broker.subscriber(dlq, DEAD_LETTER)
        async def collect_dead(body: dict, message: RabbitMessage) -> None:
            self.dead.append((body, message.headers))

    def queued(self, **spec) -> ProcessMedia:
        """A job with its jobs row, as the gateway queues it."""
        job = make_job(**spec)
        self.rows.rows[job.job_id] = JobRow(JobStatus.QUEUED, job.attempt)
        return job


async def publish(broker, message: dict, routing_key: str = "job.run") -> None:
    await broker.publish(message, exchange=COMMANDS, routing_key=routing_key)


async def test_a_job_command_runs_and_its_events_are_published(tmp_path):
    wired = Wired(tmp_path)
    job = wired.queued(preset="h264-480p")
    cancelled = wired.queued()
    async with TestRabbitBroker(wired.broker) as br:
        await publish(br, job.model_dump(mode="json"))
        cancel = CancelJob(job_id=cancelled.job_id).model_dump(mode="json")
        await publish(br, cancel, "job.cancel")
        await publish(br, cancelled.model_dump(mode="json"))
        await publish(br, {"job_id": "not-a-uuid"})
    events = wired.events
    assert events[0]["worker"] == "replica-test"  # JobStarted names this replica
    completed = [e for e in events if e["job_id"] == str(job.job_id)][-1]
    assert completed["outputs"][0]["key"] == job.output_key
    assert wired.storage.keys() == [job.output_key]
    # Cancelled while queued: it never ran, and the gateway hears it ended.
    (skipped,) = [e for e in events if e["job_id"] == str(cancelled.job_id)]
    assert set(skipped) >= {"job_id", "reason"} and "worker" not in skipped
    assert skipped["reason"] == "cancelled by user"
    ((body, headers),) = wired.dead
    assert body == {"job_id": "not-a-uuid"}  # malformed → DLQ
    assert headers[ERROR_TYPE_HEADER] == "ValidationError"
    assert jobs_total(wired.container, "completed") == 1
    assert jobs_total(wired.container, "skipped") == 1


async def test_transient_failures_are_republished_then_dead_lettered(tmp_path):
    wired = Wired(tmp_path)
    wired.storage.fail.add("download")
    job = wired.queued()
    async with TestRabbitBroker(wired.broker) as br:
        await publish(br, job.model_dump(mode="json"))
    ((body, headers),) = wired.dead
    assert ProcessMedia.model_validate(body).job_id == job.job_id
    assert wired.events[-1]["reason"].startswith("gave up after 2 deliveries: S3 download failed")
    assert wired.events[-1]["retryable"] is True
    assert jobs_total(wired.container, "retried") == 1
    # Labelled by the cause of the last failure, with the reason.
    assert headers[ERROR_TYPE_HEADER] == "TransientError"
    assert headers[ERROR_HEADER].startswith("gave up after 2 deliveries: S3 download failed")


async def test_dead_letters_are_labelled_by_cause(tmp_path):
    runner = FakeRunner()

    async def broken(*args, **kwargs):
        raise RuntimeError("bug in a port")

    runner.run = broken
    wired = Wired(tmp_path, runner=runner)
    buggy = wired.queued()
    forged = make_job()  # no jobs row: the gateway never queued it
    async with TestRabbitBroker(wired.broker) as br:
        await publish(br, buggy.model_dump(mode="json"))
        await publish(br, forged.model_dump(mode="json"))
    labels = {
        ProcessMedia.model_validate(body).job_id: (
            headers[ERROR_TYPE_HEADER],
            headers[ERROR_HEADER],
        )
        for body, headers in wired.dead
    }
    assert labels == {
        buggy.job_id: ("RuntimeError", "internal error: RuntimeError: bug in a port"),
        forged.job_id: (
            "UnknownJob",
            f"job {forged.job_id} has no jobs row: a forged or stale command, not run",
        ),
    }
    # The internal error ends the job for the gateway; the forged one has no job to end.
    assert [e["job_id"] for e in wired.events if "retryable" in e] == [str(buggy.job_id)]


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
