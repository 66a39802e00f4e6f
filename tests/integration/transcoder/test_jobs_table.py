"""The replica checks each ProcessMedia against the gateway's jobs table (SQLite and
PostgreSQL, where it acts as mpr_transcoder): a command without a row is dead-lettered unrun."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from mpr_shared.contracts import JobCompleted, JobStarted, ProcessMedia
from mpr_shared.messaging import ERROR_HEADER, ERROR_TYPE_HEADER, send_command
from mpr_shared.topology import TRANSCODER_JOBS
from tests.integration.transcoder.conftest import Jobs, running_replica
from tests.support.media import make_video

pytestmark = pytest.mark.timeout(180)


async def dead_letter(amqp_url: str) -> aio_pika.abc.AbstractIncomingMessage:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(TRANSCODER_JOBS.name + ".dlq", ensure=False)
        for _ in range(100):
            message = await dlq.get(no_ack=True, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.1)
    raise AssertionError("nothing was dead-lettered")


async def test_a_command_without_a_jobs_row_is_dead_lettered_and_never_run(
    transcoder_env, database_url, amqp_url, client_broker, tap, s3_client, tmp_path
):
    env = {**transcoder_env, "DATABASE_URL": database_url}
    jobs = Jobs(env, client_broker)
    clip = make_video(tmp_path / "clip.mp4", seconds=1)
    s3_client.upload_file(str(clip), env["S3_BUCKET_IN"], "in/clip.mp4")
    try:
        async with running_replica(env):
            forged = jobs.command("in/clip.mp4", kind="audio")
            await send_command(client_broker, forged)  # no row: no gateway queued it
            dead = await dead_letter(amqp_url)
            # A queued job on the same table runs: the replica can read it (as its role).
            queued = await jobs.submit(jobs.command("in/clip.mp4", kind="audio"))
            await tap.wait_for(queued.job_id, JobCompleted)
    finally:
        await jobs.engine.dispose()
    assert ProcessMedia.model_validate_json(dead.body).job_id == forged.job_id
    assert dead.headers[ERROR_TYPE_HEADER] == "UnknownJob"
    assert dead.headers[ERROR_HEADER] == (
        f"job {forged.job_id} has no jobs row: a forged or stale command, not run"
    )
    assert tap.of(forged.job_id, JobStarted) == [] and tap.of(forged.job_id) == []
    listed = s3_client.list_objects_v2(Bucket=env["S3_BUCKET_OUT"], Prefix="in/clip/")
    assert [o["Key"] for o in listed.get("Contents", [])] == [queued.output_key]
