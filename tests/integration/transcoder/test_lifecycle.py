"""A replica's life as a process: it exits by itself when idle (KEDA ScaledJob pods)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpr_shared.contracts import JobCompleted
from tests.support.media import make_video

pytestmark = pytest.mark.timeout(240)


async def test_an_idle_replica_exits_0_but_never_during_a_job(
    transcoder_env, client_broker, jobs, tap, s3_client, spawn, tmp_path: Path
):
    clip = make_video(tmp_path / "clip.mp4", seconds=3, size="640x360")
    s3_client.upload_file(str(clip), transcoder_env["S3_BUCKET_IN"], "in/clip.mp4")
    # Queued before the replica starts, and slower than the idle limit (one thread, VP9).
    job = await jobs.submit(jobs.command("in/clip.mp4", kind="transcode", preset="vp9-720p"))
    replica = spawn(TRANSCODER_IDLE_EXIT_SECONDS="2", FFMPEG_THREADS="1")
    await tap.wait_for(job.job_id, JobCompleted, timeout=180)
    assert replica.proc.poll() is None  # it worked through the limit
    assert replica.proc.wait(timeout=30) == 0
    assert "shutting down (no job for 2s)" in replica.output()
