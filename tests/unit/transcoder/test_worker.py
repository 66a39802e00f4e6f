"""Delivery decisions: skip, run, retry, dead-letter, hand back, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mpr_shared.contracts import (
    CancelJob,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobStatus,
    ProcessMedia,
)
from mpr_transcoder.application.job_core import CoreConfig, JobCore
from mpr_transcoder.application.ports import JobRow
from mpr_transcoder.application.worker import JobWorker, WorkerConfig
from mpr_transcoder.domain.ffmpeg_args import Limits
from tests.unit.transcoder.fakes import (
    FakeDelivery,
    FakeJobRows,
    FakeMetrics,
    FakePublisher,
    FakeRedelivery,
    FakeRunner,
    FakeStorage,
    make_job,
)


class Harness:
    def __init__(self, tmp_path: Path, runner=None, storage=None, **config) -> None:
        self.publisher = FakePublisher()
        self.runner = runner or FakeRunner()
        self.storage = storage or FakeStorage()
        self.rows = FakeJobRows()
        self.redelivery = FakeRedelivery()
        core = JobCore(
            config=CoreConfig(scratch=tmp_path, limits=Limits()),
            storage=self.storage,
            runner=self.runner,
            publisher=self.publisher,
            metrics=FakeMetrics(),
            worker="replica-1",
        )
        self.worker = JobWorker(
            core=core,
            publisher=self.publisher,
            rows=self.rows,
            redelivery=self.redelivery,
            config=WorkerConfig(
                **{
                    "max_deliveries": 3,
                    "retry_backoff_seconds": 0,
                    "lost_check_seconds": 0.01,
                    **config,
                }
            ),
        )

    def queued(self, **spec) -> ProcessMedia:
        """A job the gateway has queued: its ProcessMedia and its jobs row."""
        job = make_job(**spec)
        self.rows.rows[job.job_id] = JobRow(JobStatus.QUEUED, job.attempt)
        return job


async def test_a_job_runs_and_its_final_event_is_published_before_the_ack(tmp_path):
    h = Harness(tmp_path)
    job = h.queued()
    outcome = await h.worker.handle(job, FakeDelivery())
    assert outcome == "completed"
    assert h.publisher.types() == ["JobStarted", "JobProgress", "JobProgress", "JobCompleted"]
    assert h.worker.running == {}


@pytest.mark.parametrize(
    ("state", "attempt"),
    [
        (JobRow(JobStatus.CANCELLED, 1), 1),
        (JobRow(JobStatus.COMPLETED, 1), 1),
        (JobRow(JobStatus.RUNNING, 2), 1),  # a newer attempt superseded this command
    ],
)
async def test_cancelled_finished_or_stale_jobs_are_skipped_silently(tmp_path, state, attempt):
    h = Harness(tmp_path)
    job = h.queued().model_copy(update={"attempt": attempt})
    h.rows.rows[job.job_id] = state
    assert await h.worker.handle(job, FakeDelivery()) == "skipped"
    assert h.publisher.events == [] and h.runner.runs == []


async def test_a_recently_cancelled_id_never_runs_and_is_reported_cancelled(tmp_path):
    h = Harness(tmp_path)
    job = h.queued()
    # After a crash or hand-back the gateway still shows the job running: only a
    # JobCancelled from here ends it.
    h.rows.rows[job.job_id] = JobRow(JobStatus.RUNNING, 1)
    assert h.worker.cancel(CancelJob(job_id=job.job_id, reason="changed my mind")) is False
    assert await h.worker.handle(job, FakeDelivery()) == "skipped"
    assert h.runner.runs == []
    (event,) = h.publisher.events
    assert isinstance(event, JobCancelled)
    assert (event.job_id, event.attempt, event.reason) == (job.job_id, 1, "changed my mind")


async def test_a_cancel_arriving_while_the_jobs_row_is_read_still_stops_the_job(tmp_path):
    h = Harness(tmp_path)
    job = h.queued()
    read = h.rows.get

    async def cancel_during_read(job_id):
        h.worker.cancel(CancelJob(job_id=job_id))
        return await read(job_id)

    h.rows.get = cancel_during_read
    assert await h.worker.handle(job, FakeDelivery()) == "skipped"
    assert h.runner.runs == [] and h.worker.running == {}
    assert h.publisher.types() == ["JobCancelled"]


async def test_a_first_deliverys_jobs_row_is_read_while_its_source_downloads(tmp_path):
    h = Harness(tmp_path)
    job = h.queued()
    downloading = asyncio.Event()
    download, read = h.storage.download, h.rows.get

    async def signalled_download(*args, **kwargs):
        downloading.set()
        return await download(*args, **kwargs)

    async def read_during_download(job_id):
        await asyncio.wait_for(downloading.wait(), 5)
        assert h.publisher.events == []  # JobStarted waits for the row's answer
        return await read(job_id)

    h.storage.download, h.rows.get = signalled_download, read_during_download
    assert await h.worker.handle(job, FakeDelivery()) == "completed"
    assert h.publisher.types() == ["JobStarted", "JobProgress", "JobProgress", "JobCompleted"]


async def test_a_job_without_a_jobs_row_is_dead_lettered_unrun(tmp_path):
    # The outbox commits the row before the command: without one it is forged or stale.
    h = Harness(tmp_path)
    job = make_job()
    assert await h.worker.handle(job, FakeDelivery(deliveries=2)) == "dead-lettered"
    ((job_id, reason, count),) = h.redelivery.dead
    assert job_id == job.job_id and count == 2
    assert reason == f"job {job.job_id} has no jobs row: a forged or stale command, not run"
    assert h.redelivery.causes == ["UnknownJob"]
    assert h.runner.runs == [] and h.publisher.events == []


async def test_an_unreachable_jobs_table_fails_open_and_says_so(tmp_path, caplog):
    h = Harness(tmp_path)
    h.rows.broken = True
    with caplog.at_level("WARNING"):
        assert await h.worker.handle(make_job(), FakeDelivery()) == "completed"
    assert "the jobs table is unreachable (database down); running the job unchecked" in (
        caplog.text
    )


async def test_a_redelivered_job_is_requeued_with_its_count_raised(tmp_path):
    h = Harness(tmp_path)
    job = h.queued()
    assert await h.worker.handle(job, FakeDelivery(deliveries=1, redelivered=True)) == "retried"
    assert h.redelivery.retried == [(job.job_id, 2)] and h.runner.runs == []


async def test_a_job_that_keeps_crashing_replicas_is_dead_lettered(tmp_path):
    h = Harness(tmp_path)
    job = h.queued()
    outcome = await h.worker.handle(job, FakeDelivery(deliveries=3, redelivered=True))
    assert outcome == "dead-lettered"
    ((job_id, reason, count),) = h.redelivery.dead
    assert job_id == job.job_id and count == 3 and "replica died" in reason
    assert h.redelivery.causes == ["ReplicaDied"]  # labelled by its cause
    (failed,) = h.publisher.events
    assert isinstance(failed, JobFailed) and failed.retryable and "gave up" in failed.reason


async def test_transient_failures_retry_then_dead_letter_at_the_limit(tmp_path):
    h = Harness(tmp_path)
    h.storage.fail.add("download")
    job = h.queued()
    assert await h.worker.handle(job, FakeDelivery(deliveries=1)) == "retried"
    assert h.redelivery.retried == [(job.job_id, 2)]
    assert await h.worker.handle(job, FakeDelivery(deliveries=3)) == "dead-lettered"
    assert "S3 download failed" in h.redelivery.dead[0][1]
    assert h.redelivery.causes == ["TransientError"]
    assert isinstance(h.publisher.events[-1], JobFailed)


async def test_bad_input_is_a_result_not_a_retry(tmp_path):
    h = Harness(tmp_path, storage=FakeStorage({}))  # the source does not exist
    assert await h.worker.handle(h.queued(), FakeDelivery()) == "failed"
    assert h.redelivery.retried == [] and h.redelivery.dead == []


async def test_an_unexpected_error_fails_the_job_and_dead_letters_it(tmp_path):
    runner = FakeRunner()

    async def broken_run(*args, **kwargs):
        raise RuntimeError("bug in a port")

    runner.run = broken_run
    h = Harness(tmp_path, runner=runner)
    job = h.queued()
    assert await h.worker.handle(job, FakeDelivery(deliveries=2)) == "dead-lettered"
    assert h.publisher.types() == ["JobStarted", "JobFailed"]
    failed = h.publisher.events[-1]
    assert not failed.retryable
    assert failed.reason == "internal error: RuntimeError: bug in a port"
    assert h.redelivery.dead == [(job.job_id, failed.reason, 2)] and h.redelivery.retried == []
    assert h.redelivery.causes == ["RuntimeError"]  # not a blanket TransientError
    assert h.worker.running == {} and list(tmp_path.iterdir()) == []


async def test_cancel_reaches_the_running_job(tmp_path):
    h = Harness(tmp_path, runner=FakeRunner(block=True))
    job = h.queued()
    task = asyncio.create_task(h.worker.handle(job, FakeDelivery()))
    await h.runner.started.wait()
    assert h.worker.cancel(CancelJob(job_id=job.job_id, reason="no longer needed")) is True
    assert await task == "cancelled"
    assert isinstance(h.publisher.events[-1], JobCancelled)
    assert h.runner.killed


async def test_max_job_seconds_fails_the_job_cleanly(tmp_path):
    h = Harness(tmp_path, runner=FakeRunner(block=True), max_job_seconds=0.05)
    assert await h.worker.handle(h.queued(), FakeDelivery()) == "failed"
    assert "MAX_JOB_SECONDS" in h.publisher.events[-1].reason


async def test_a_lost_delivery_stops_the_job_without_events(tmp_path):
    h = Harness(tmp_path, runner=FakeRunner(block=True))
    delivery = FakeDelivery()
    task = asyncio.create_task(h.worker.handle(h.queued(), delivery))
    await h.runner.started.wait()
    delivery.is_lost = True
    assert await task == "lost"
    assert h.publisher.types() == ["JobStarted"]


async def test_drain_hands_the_running_job_back_after_the_grace(tmp_path):
    h = Harness(tmp_path, runner=FakeRunner(block=True))
    job = h.queued()
    task = asyncio.create_task(h.worker.handle(job, FakeDelivery(deliveries=2)))
    await h.runner.started.wait()
    await h.worker.drain(grace=0.05)
    assert await task == "handed-back"
    # Republished at the same count (then acked): a hand-back spends no delivery.
    assert h.redelivery.retried == [(job.job_id, 2)] and h.runner.killed
    assert h.publisher.types() == ["JobStarted"]
    assert list(tmp_path.iterdir()) == []
    later = h.queued()
    assert await h.worker.handle(later, FakeDelivery()) == "handed-back"
    assert h.redelivery.retried[-1] == (later.job_id, 1)


async def test_drain_lets_a_job_that_ends_within_the_grace_finish(tmp_path):
    h = Harness(tmp_path)
    task = asyncio.create_task(h.worker.handle(h.queued(), FakeDelivery()))
    await asyncio.sleep(0)
    await h.worker.drain(grace=5)
    assert await task == "completed"
    assert isinstance(h.publisher.events[-1], JobCompleted)


async def test_idle_time_counts_from_the_last_delivery_and_is_zero_during_one(tmp_path):
    now = [100.0]
    h = Harness(tmp_path, runner=FakeRunner(block=True))
    worker = JobWorker(
        core=h.worker.core,
        publisher=h.publisher,
        rows=h.rows,
        redelivery=h.redelivery,
        config=h.worker.config,
        clock=lambda: now[0],
    )
    now[0] = 130.0
    assert worker.idle_seconds() == 30.0
    job = h.queued()
    task = asyncio.create_task(worker.handle(job, FakeDelivery()))
    await h.runner.started.wait()
    now[0] = 500.0
    assert worker.idle_seconds() == 0.0  # a long job is not idleness
    worker.cancel(CancelJob(job_id=job.job_id))
    assert await task == "cancelled"
    now[0] = 502.5
    assert worker.idle_seconds() == 2.5


@pytest.mark.parametrize("returncode", [255, -9])  # SIGTERM (FFmpeg exits 255), SIGKILL
async def test_ffmpeg_stopped_by_a_signal_we_did_not_send_is_retried_not_failed(
    tmp_path, returncode
):
    h = Harness(tmp_path, runner=FakeRunner(returncode=returncode), signal_settle_seconds=0.01)
    job = h.queued()
    assert await h.worker.handle(job, FakeDelivery()) == "retried"
    assert h.redelivery.retried == [(job.job_id, 2)]
    assert "JobFailed" not in h.publisher.types()


async def test_ffmpeg_stopped_as_its_replica_shuts_down_is_handed_back_at_its_count(tmp_path):
    # systemd's KillMode=control-group signals FFmpeg and the replica at the same moment.
    h = Harness(tmp_path, runner=FakeRunner(returncode=255), signal_settle_seconds=5)
    job = h.queued()
    task = asyncio.create_task(h.worker.handle(job, FakeDelivery(deliveries=3)))
    await h.runner.started.wait()
    await asyncio.sleep(0.05)  # FFmpeg's exit is seen first, then the replica's own signal
    await h.worker.drain(grace=1)
    assert await task == "handed-back"
    assert h.redelivery.retried == [(job.job_id, 3)] and h.redelivery.dead == []
    assert "JobFailed" not in h.publisher.types()


async def test_a_shutdown_during_a_retry_backoff_hands_the_job_back(tmp_path):
    h = Harness(tmp_path, storage=FakeStorage(), retry_backoff_seconds=30)
    h.storage.fail.add("download")
    job = h.queued()
    task = asyncio.create_task(h.worker.handle(job, FakeDelivery()))
    await asyncio.sleep(0.05)
    await h.worker.drain(grace=5)
    assert await task == "handed-back"
    assert h.redelivery.retried == [(job.job_id, 1)]
