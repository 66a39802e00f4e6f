"""The replica's heartbeat: its identity and current job, and WorkerStopped at the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from mpr_shared.contracts import CancelJob, WorkerHeartbeat, WorkerStopped
from mpr_transcoder.application.heartbeat import Heartbeat, Replica
from tests.unit.transcoder.fakes import FakeDelivery, FakePublisher, FakeRunner
from tests.unit.transcoder.test_worker import Harness

REPLICA = Replica("replica-1", "host-a", 42, "0.1.0", datetime(2026, 1, 1, tzinfo=UTC))


def heartbeat(publisher: FakePublisher, current=lambda: None, interval: float = 0.01) -> Heartbeat:
    async def version() -> str:
        return "5.1.9"

    return Heartbeat(
        replica=REPLICA,
        publisher=publisher,
        current_job=current,
        ffmpeg_version=version,
        interval=interval,
    )


async def test_beats_every_interval_with_identity_and_ffmpeg_version():
    publisher = FakePublisher()
    beating = asyncio.create_task(heartbeat(publisher).run())
    while len(publisher.events) < 3:
        await asyncio.sleep(0.005)
    beating.cancel()
    beat = publisher.events[0]
    assert isinstance(beat, WorkerHeartbeat)
    assert (beat.worker, beat.host, beat.pid, beat.ffmpeg_version) == (
        "replica-1",
        "host-a",
        42,
        "5.1.9",
    )
    assert beat.current_job_id is None and beat.interval_seconds == 0.01


async def test_a_failed_beat_is_logged_not_raised_and_stopped_says_goodbye():
    publisher = FakePublisher()
    beats = heartbeat(publisher)
    publisher.fail = True
    assert await beats.beat() is False
    publisher.fail = False
    await beats.stopped("signal")
    assert publisher.events == [WorkerStopped(**{**publisher.events[0].model_dump()})]
    assert publisher.events[0].reason == "signal"


async def test_the_running_job_and_its_progress_are_in_the_heartbeat(tmp_path):
    h = Harness(tmp_path, runner=FakeRunner(block=True))
    beats = heartbeat(h.publisher, h.worker.current_job)
    assert beats.message().current_job_id is None
    job = h.queued()
    task = asyncio.create_task(h.worker.handle(job, FakeDelivery()))
    await h.runner.started.wait()
    h.worker.core.progress[job.job_id] = 40.0
    message = beats.message()
    assert (message.current_job_id, message.current_job_progress) == (job.job_id, 40.0)
    h.worker.cancel(CancelJob(job_id=job.job_id))
    await task
    assert beats.message().current_job_id is None and h.worker.core.progress == {}
