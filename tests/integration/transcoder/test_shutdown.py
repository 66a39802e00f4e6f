"""Signals from outside the replica: a shutdown of its process group or of its whole cgroup
hands the running job back without spending a delivery; a signal that stops FFmpeg alone is
an interruption that is retried, never a bad input."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from mpr_shared.contracts import JobCompleted, JobFailed, JobProgress, JobStarted
from mpr_shared.topology import TRANSCODER_JOBS
from tests.integration.transcoder.conftest import (
    ffmpeg_processes_under,
    probe_json,
    queue_depths,
    running_replica,
)
from tests.support.media import make_video

pytestmark = pytest.mark.timeout(420)
# One thread on a minute of video keeps FFmpeg busy long enough to be interrupted.
SPEC = {"kind": "transcode", "preset": "h264-480p"}


@pytest.fixture(scope="module")
def minute_clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("minute") / "minute.mp4", seconds=60, size="640x360")


@pytest.fixture
def env(transcoder_env: dict) -> dict:
    return {**transcoder_env, "FFMPEG_THREADS": "1"}


async def start_long_job(env: dict, jobs, tap, s3_client, clip: Path):
    s3_client.upload_file(str(clip), env["S3_BUCKET_IN"], "in/minute.mp4")
    job = await jobs.submit(jobs.command("in/minute.mp4", **SPEC))
    await tap.wait_for(job.job_id, JobProgress)
    (started,) = tap.of(job.job_id, JobStarted)
    workdir = Path(env["TRANSCODER_WORK_DIR"]) / started.worker
    ffmpeg = ffmpeg_processes_under(workdir)
    assert ffmpeg, "FFmpeg should be running"
    return job, ffmpeg


def outputs(s3_client, bucket: str, prefix: str) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


async def test_sigterm_to_the_process_group_hands_the_job_back_without_spending_a_delivery(
    env, client_broker, jobs, tap, s3_client, minute_clip, spawn, tmp_path
):
    # What honcho, systemd's KillMode=mixed and `kill -TERM -PGID` do.
    first = spawn(**{**env, "SHUTDOWN_GRACE_SECONDS": "0.5"})
    job, _ = await start_long_job(env, jobs, tap, s3_client, minute_clip)
    os.killpg(first.proc.pid, signal.SIGTERM)  # spawn starts each replica as a group leader
    assert first.proc.wait(timeout=60) == 0
    assert "handing it back as delivery 1" in first.output()
    assert tap.of(job.job_id, JobFailed) == []  # FFmpeg never saw the signal

    second = spawn(**env)
    done = await tap.wait_for(job.job_id, JobCompleted, timeout=300)
    # The next delivery is still the first: not flagged redelivered, its count not raised.
    assert f"job {job.job_id} attempt 1 (message {job.id}, delivery 1)\n" in second.output()
    assert "requeueing as delivery" not in second.output()
    assert tap.of(job.job_id, JobFailed) == []
    assert len(tap.of(job.job_id, JobCompleted)) == 1
    stem = job.output_key.rsplit("/", 1)[0] + "/"
    assert outputs(s3_client, job.output_bucket, stem) == [job.output_key]
    assert [o.key for o in done.outputs] == [job.output_key]
    local = tmp_path / "out.mp4"
    s3_client.download_file(job.output_bucket, job.output_key, str(local))
    assert abs(float(probe_json(local)["format"]["duration"]) - 60.0) < 1.0


async def test_a_signal_to_ffmpeg_and_its_replica_together_hands_the_job_back(
    env, amqp_url, client_broker, jobs, tap, s3_client, minute_clip, spawn
):
    # systemd's default KillMode=control-group signals every process of the unit, FFmpeg too.
    first = spawn(**{**env, "SHUTDOWN_GRACE_SECONDS": "5"})
    job, ffmpeg = await start_long_job(env, jobs, tap, s3_client, minute_clip)
    for pid in ffmpeg:
        os.kill(pid, signal.SIGTERM)  # FFmpeg exits 255 at once
    os.killpg(first.proc.pid, signal.SIGTERM)
    assert first.proc.wait(timeout=60) == 0
    assert "handing it back as delivery 1" in first.output()
    assert tap.of(job.job_id, JobFailed) == []
    depths = await queue_depths(amqp_url)
    assert depths == {TRANSCODER_JOBS.name: 1, TRANSCODER_JOBS.name + ".dlq": 0}


async def test_ffmpeg_stopped_by_a_signal_alone_is_retried_not_failed(
    env, client_broker, jobs, tap, s3_client, minute_clip
):
    # The OOM killer, or an operator's kill: the input is not to blame.
    async with running_replica({**env, "RETRY_BACKOFF_SECONDS": "0.1"}):
        job, ffmpeg = await start_long_job(env, jobs, tap, s3_client, minute_clip)
        for pid in ffmpeg:
            os.kill(pid, signal.SIGKILL)
        await tap.wait_for(job.job_id, JobCompleted, timeout=300)
    assert tap.of(job.job_id, JobFailed) == []
    assert len(tap.of(job.job_id, JobStarted)) == 2  # the stopped run, then the retry
    assert len(tap.of(job.job_id, JobCompleted)) == 1
