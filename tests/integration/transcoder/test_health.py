"""The replica's health app: liveness, readiness of each dependency, metrics."""

from __future__ import annotations

import asyncio

import httpx

from mpr_shared.contracts import JobCompleted
from tests.integration.transcoder.conftest import running_replica
from tests.support.media import make_video
from tests.support.stack import free_port


async def test_health_ready_and_metrics(
    transcoder_env, client_broker, jobs, tap, s3_client, tmp_path
):
    port = free_port()
    env = {**transcoder_env, "HEALTH_PORT": str(port)}
    clip = make_video(tmp_path / "c.mp4", seconds=1)
    s3_client.upload_file(str(clip), env["S3_BUCKET_IN"], "in/c.mp4")
    async with running_replica(env), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/api/health")).json() == {"status": "ok"}
        ready = await http.get("/api/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {
            "rabbitmq": "ok",
            "database": "ok",
            "s3": "ok",
            "ffmpeg": "ok",
        }
        job = await jobs.submit(jobs.command("in/c.mp4", kind="audio"))
        await tap.wait_for(job.job_id, JobCompleted)
        wanted = 'mpr_transcoder_jobs_total{outcome="completed"} 1.0'
        for _ in range(100):  # the counter moves just after the event is confirmed
            metrics = (await http.get("/metrics")).text
            if wanted in metrics:
                break
            await asyncio.sleep(0.1)
        assert wanted in metrics
        assert "mpr_transcoder_job_seconds_bucket" in metrics


async def test_ready_reports_a_missing_bucket(transcoder_env, client_broker):
    port = free_port()
    env = {**transcoder_env, "HEALTH_PORT": str(port), "S3_BUCKET_OUT": "mpr-no-such-bucket-x1"}
    async with running_replica(env), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        ready = await http.get("/api/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["s3"].startswith("down:")
        assert ready.json()["checks"]["rabbitmq"] == "ok"
