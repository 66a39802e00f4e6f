"""The replica's health server (mpr_shared.health on HEALTH_PORT): liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

import httpx

from mpr_shared.contracts import JobCompleted
from tests.integration.transcoder.conftest import running_replica
from tests.support.media import make_video
from tests.support.stack import free_port

OK = {"ok": True, "detail": "ok"}


async def test_health_ready_and_metrics(
    transcoder_env, client_broker, jobs, tap, s3_client, tmp_path
):
    port = free_port()
    env = {**transcoder_env, "HEALTH_PORT": str(port)}
    clip = make_video(tmp_path / "c.mp4", seconds=1)
    s3_client.upload_file(str(clip), env["S3_BUCKET_IN"], "in/c.mp4")
    async with running_replica(env), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        health = await http.get("/api/health")
        assert health.json() == {"service": "transcoder", "status": "ok"}
        ready = await http.get("/api/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "service": "transcoder",
            "status": "ready",
            "checks": {
                "rabbitmq": {**OK, "critical": True},
                "s3": {**OK, "critical": True},
                "ffmpeg": {**OK, "critical": True},
                "database": {**OK, "critical": False},
            },
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
        speed = 'mpr_transcoder_ffmpeg_speed_count{kind="audio",preset="audio-aac"} 1.0'
        assert speed in metrics


async def test_a_missing_bucket_makes_the_replica_unavailable(transcoder_env, client_broker):
    port = free_port()
    env = {**transcoder_env, "HEALTH_PORT": str(port), "S3_BUCKET_OUT": "mpr-no-such-bucket-x1"}
    async with running_replica(env), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        ready = await http.get("/api/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["s3"]["ok"] is False and body["checks"]["s3"]["critical"] is True
        assert body["checks"]["rabbitmq"] == {**OK, "critical": True}


async def test_an_unreachable_database_only_degrades_the_replica(transcoder_env, client_broker):
    # The worker fails open without the jobs table, so the replica stays in service.
    port = free_port()
    env = {
        **transcoder_env,
        "HEALTH_PORT": str(port),
        "DATABASE_URL": f"postgresql://mpr@127.0.0.1:{free_port()}/mpr",
    }
    async with running_replica(env), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        ready = await http.get("/api/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["database"]["critical"] is False
