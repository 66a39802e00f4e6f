"""Delivery semantics on the real broker: cancel, failures, priority, crashes, SIGTERM."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from pathlib import Path

import aio_pika
import pytest

from mpr_shared.contracts import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    ProcessMedia,
)
from mpr_shared.messaging import ERROR_HEADER, ERROR_TYPE_HEADER
from mpr_shared.topology import TRANSCODER_JOBS
from tests.integration.transcoder.conftest import (
    ffmpeg_processes_under,
    jobs_total,
    probe_json,
    queue_depths,
    running_replica,
)
from tests.support.media import make_video

pytestmark = pytest.mark.timeout(300)
# VP9 at one thread on a 10 s 720p clip runs for several seconds: long enough to interrupt.
SLOW = {"kind": "transcode", "preset": "vp9-720p"}


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("long") / "long.mp4", seconds=10, size="1280x720")


@pytest.fixture
def slow_env(transcoder_env: dict) -> dict:
    return {**transcoder_env, "FFMPEG_THREADS": "1"}


def upload(s3_client, env: dict, clip: Path, key: str) -> str:
    s3_client.upload_file(str(clip), env["S3_BUCKET_IN"], key)
    return key


def output_keys(s3_client, bucket: str, prefix: str) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


async def wait_until(predicate, timeout: float = 60, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await predicate():
            return result
        await asyncio.sleep(interval)
    raise TimeoutError(predicate)


async def queues_empty(amqp_url: str) -> bool:
    return set((await queue_depths(amqp_url)).values()) == {0}


async def test_a_running_job_is_cancelled_killed_and_cleaned(
    slow_env, amqp_url, client_broker, jobs, tap, s3_client, long_clip
):
    key = upload(s3_client, slow_env, long_clip, "in/long.mp4")
    job = jobs.command(key, **SLOW)
    bucket = job.output_bucket
    # A partial object from an earlier, crashed attempt of this job: it must go too.
    s3_client.put_object(Bucket=bucket, Key=job.output_key, Body=b"partial")
    async with running_replica(slow_env) as container:
        await jobs.submit(job)
        await tap.wait_for(job.job_id, JobProgress)
        workdir = container.worker.core.config.scratch
        assert ffmpeg_processes_under(workdir)
        await jobs.cancel(job.job_id)
        cancelled = await tap.wait_for(job.job_id, JobCancelled)
        assert cancelled.reason == "cancelled by user"
        assert ffmpeg_processes_under(workdir) == []
        assert [p.name for p in workdir.iterdir() if p.name.startswith("job-")] == []
    assert output_keys(s3_client, bucket, job.output_key) == []
    assert tap.of(job.job_id, JobCompleted) == [] and tap.of(job.job_id, JobFailed) == []
    await wait_until(lambda: queues_empty(amqp_url))


async def test_queued_jobs_that_were_cancelled_never_run(
    slow_env, amqp_url, client_broker, jobs, tap, s3_client, long_clip
):
    key = upload(s3_client, slow_env, long_clip, "in/long.mp4")
    async with running_replica(slow_env):
        blocker = await jobs.submit(jobs.command(key, **SLOW))
        await tap.wait_for(blocker.job_id, JobStarted)
        heard = await jobs.submit(jobs.command(key, **SLOW))  # cancel reaches the live queue
        await jobs.cancel(heard.job_id)
        # Cancelled in the jobs table by the gateway; this replica never heard a command.
        in_table = await jobs.submit(jobs.command(key, **SLOW), status="cancelled")
        await asyncio.sleep(0.5)  # let the cancel command arrive before the blocker ends
        await jobs.cancel(blocker.job_id)
        await tap.wait_for(blocker.job_id, JobCancelled)
        await wait_until(lambda: queues_empty(amqp_url))
    # Neither ran; the one cancelled by command is reported cancelled (the gateway may
    # still show it running after a crash), the one the table already ends stays silent.
    assert [type(e) for e in tap.of(heard.job_id)] == [JobCancelled]
    assert tap.of(in_table.job_id) == []
    for job in (heard, in_table):
        assert output_keys(s3_client, job.output_bucket, job.output_key) == []


async def test_a_corrupt_source_fails_with_ffmpeg_lines_and_no_retry(
    replica, amqp_url, jobs, tap, s3_client
):
    bucket_in = jobs.env["S3_BUCKET_IN"]
    s3_client.put_object(Bucket=bucket_in, Key="in/broken.mp4", Body=b"\x00not a video" * 4096)
    job = await jobs.submit(jobs.command("in/broken.mp4", kind="transcode", preset="h264-480p"))
    failed = await tap.wait_for(job.job_id, JobFailed)
    assert failed.reason.startswith("the source is not a decodable media file: ")
    assert not failed.retryable
    assert failed.error_lines
    assert any("Invalid data" in line or "moov atom" in line for line in failed.error_lines)
    # The replica's scratch paths stay inside it: the lines say "the source".
    told = failed.reason + "\n" + "\n".join(failed.error_lines)
    assert "the source: Invalid data found when processing input" in told
    assert jobs.env["TRANSCODER_WORK_DIR"] not in told and "source.mp4" not in told
    await wait_until(lambda: queues_empty(amqp_url))
    assert len(tap.of(job.job_id, JobStarted)) == 1
    assert output_keys(s3_client, job.output_bucket, job.output_key) == []


async def test_a_playlist_disguised_as_mp4_is_refused_not_followed(
    replica, amqp_url, jobs, tap, s3_client
):
    # Were the hls demuxer allowed, FFmpeg would fetch this URL (SSRF) before failing.
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n"
    bucket_in = jobs.env["S3_BUCKET_IN"]
    s3_client.put_object(Bucket=bucket_in, Key="in/playlist.mp4", Body=playlist.encode())
    job = await jobs.submit(jobs.command("in/playlist.mp4", kind="transcode", preset="h264-480p"))
    failed = await tap.wait_for(job.job_id, JobFailed)
    assert not failed.retryable
    assert any("Format not on whitelist" in line for line in failed.error_lines)
    await wait_until(lambda: queues_empty(amqp_url))


async def test_higher_priority_jobs_are_delivered_first(amqp_url, client_broker, jobs):
    low = jobs.command("in/a.mp4", kind="audio").model_copy(update={"priority": 1})
    high = jobs.command("in/b.mp4", kind="audio").model_copy(update={"priority": 8})
    await jobs.submit(low)
    await jobs.submit(high)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(TRANSCODER_JOBS.name, ensure=False)
        received = []
        for _ in range(2):
            message = await queue.get(no_ack=True, timeout=5)
            received.append(ProcessMedia.model_validate_json(message.body).job_id)
            assert message.priority in (1, 8)
    assert received == [high.job_id, low.job_id]


async def test_a_job_that_keeps_crashing_is_dead_lettered_with_the_reason(
    transcoder_env, amqp_url, jobs, tap
):
    job = await jobs.submit(jobs.command("in/a.mp4", kind="audio"))
    # Take the delivery and vanish without an ack, as a SIGKILLed replica would.
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    queue = await channel.get_queue(TRANSCODER_JOBS.name, ensure=False)
    assert (await queue.get(no_ack=False, timeout=5)) is not None
    await connection.close()
    async with running_replica({**transcoder_env, "MAX_DELIVERIES": "1"}):
        failed = await tap.wait_for(job.job_id, JobFailed)
    assert failed.retryable and "gave up after 1 deliveries" in failed.reason
    assert tap.of(job.job_id, JobStarted) == []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(TRANSCODER_JOBS.name + ".dlq", ensure=False)
        dead = await dlq.get(no_ack=True, timeout=5)
        assert ProcessMedia.model_validate_json(dead.body).job_id == job.job_id
        assert "replica died" in dead.headers[ERROR_HEADER]
        assert dead.headers[ERROR_TYPE_HEADER] == "ReplicaDied"  # its cause, not a label


async def test_a_replica_killed_mid_job_leaves_exactly_one_output_set(
    slow_env, amqp_url, client_broker, jobs, tap, s3_client, long_clip, spawn, tmp_path
):
    key = upload(s3_client, slow_env, long_clip, "in/long.mp4")
    first = spawn(**slow_env)
    job = await jobs.submit(jobs.command(key, **SLOW))
    await tap.wait_for(job.job_id, JobProgress)
    started = tap.of(job.job_id, JobStarted)
    work_root = Path(slow_env["TRANSCODER_WORK_DIR"])
    (dead_dir,) = [p for p in work_root.iterdir() if p.name == started[0].worker]
    first.signal(signal.SIGKILL)
    first.proc.wait(timeout=30)

    async def ffmpeg_gone() -> bool:
        return ffmpeg_processes_under(dead_dir) == []

    await wait_until(ffmpeg_gone, timeout=10)  # PR_SET_PDEATHSIG took FFmpeg down with it
    second = spawn(**slow_env)
    assert not dead_dir.exists()  # swept at startup
    done = await tap.wait_for(job.job_id, JobCompleted, timeout=180)
    workers = [e.worker for e in tap.of(job.job_id, JobStarted)]
    assert workers[0] == started[0].worker and workers[-1] != started[0].worker
    assert len(tap.of(job.job_id, JobCompleted)) == 1
    stem = job.output_key.rsplit("/", 1)[0] + "/"
    assert output_keys(s3_client, job.output_bucket, stem) == [job.output_key]
    assert [o.key for o in done.outputs] == [job.output_key]
    local = tmp_path / "out.webm"
    s3_client.download_file(job.output_bucket, job.output_key, str(local))
    assert abs(float(probe_json(local)["format"]["duration"]) - 10.0) < 0.5
    await wait_until(lambda: queues_empty(amqp_url))
    assert "redelivered" in second.output()


async def test_sigterm_hands_the_running_job_back(
    slow_env, amqp_url, client_broker, jobs, tap, s3_client, long_clip, spawn
):
    key = upload(s3_client, slow_env, long_clip, "in/long.mp4")
    first = spawn(**{**slow_env, "SHUTDOWN_GRACE_SECONDS": "0.5"})
    job = await jobs.submit(jobs.command(key, **SLOW))
    await tap.wait_for(job.job_id, JobProgress)
    first.signal(signal.SIGTERM)
    assert first.proc.wait(timeout=60) == 0
    assert "handing job" in first.output()
    depths = await queue_depths(amqp_url)
    assert depths[TRANSCODER_JOBS.name] == 1  # handed back, not lost or dead-lettered
    work_root = Path(slow_env["TRANSCODER_WORK_DIR"])
    assert list(work_root.iterdir()) == []  # temp files removed on the way out
    spawn(**slow_env)
    await tap.wait_for(job.job_id, JobCompleted, timeout=180)
    assert tap.of(job.job_id, JobFailed) == [] and tap.of(job.job_id, JobCancelled) == []


def _connections(vhost: str) -> set[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "--no-table-headers", "pid", "vhost"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return {line.split("\t")[0] for line in out.splitlines() if line.split("\t")[-1:] == [vhost]}


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
async def test_a_delivery_the_broker_takes_back_is_stopped_not_run_twice(
    slow_env, amqp_url, client_broker, jobs, tap, s3_client, long_clip
):
    # What a consumer timeout or a dropped connection does: the broker closes the channel
    # and requeues the delivery while FFmpeg still runs for it.
    key = upload(s3_client, slow_env, long_clip, "in/long.mp4")
    vhost = amqp_url.rstrip("/").rsplit("/", 1)[1]
    before = await asyncio.to_thread(_connections, vhost)
    async with running_replica(slow_env) as container:
        replica_connections = await asyncio.to_thread(_connections, vhost) - before
        assert replica_connections
        job = await jobs.submit(jobs.command(key, **SLOW))
        await tap.wait_for(job.job_id, JobProgress)
        for pid in replica_connections:
            subprocess.run(
                ["rabbitmqctl", "close_connection", pid, "test: broker takes the delivery back"],
                check=True,
                capture_output=True,
                timeout=60,
            )
        await tap.wait_for(job.job_id, JobCompleted, timeout=180)
        await wait_until(lambda: queues_empty(amqp_url))
        assert jobs_total(container, "lost") == 1
    assert len(tap.of(job.job_id, JobCompleted)) == 1
    assert len(tap.of(job.job_id, JobStarted)) == 2  # the lost run, then the redelivered one
    stem = job.output_key.rsplit("/", 1)[0] + "/"
    assert output_keys(s3_client, job.output_bucket, stem) == [job.output_key]
