"""The Celery baseline that `python -m bench celery` times does the job it is compared on.

No timing here (benchmarks live in bench/): a real Celery worker on the test vhost takes one
copy trim through S3 and returns over the RPC backend, and the output is checked with ffprobe.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker

from bench import celery_baseline
from mpr_shared.contracts import JobSpec, ProcessMedia
from tests.support.media import ffprobe, make_video, stream


@pytest.fixture
def baseline(amqp_url: str, s3, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", s3.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    celery_baseline.s3.cache_clear()
    app = celery_baseline.app
    app.conf.broker_url = amqp_url
    # With broker heartbeats the worker thread wakes every few seconds and sees it must stop;
    # without them its teardown waits out the 10 s join timeout.
    with start_worker(
        app, pool="solo", perform_ping_check=False, loglevel="WARNING", without_heartbeat=False
    ):
        yield celery_baseline.process_media
    celery_baseline.s3.cache_clear()


def test_the_celery_baseline_trims_through_s3(baseline, s3_client, buckets, tmp_path: Path):
    bucket_in, bucket_out = buckets
    clip = make_video(tmp_path / "clip.mp4", seconds=5.0)
    s3_client.upload_file(str(clip), bucket_in, "in/clip.mp4")
    job_id = uuid.uuid4()
    job = ProcessMedia(
        job_id=job_id,
        correlation_id=str(job_id),
        source_bucket=bucket_in,
        source_key="in/clip.mp4",
        source_duration=5.0,
        spec=JobSpec(kind="trim", start=1.0, end=3.0),
        output_bucket=bucket_out,
        output_key="out/trim.mp4",
    )

    result = baseline.apply_async(
        (job.model_dump(mode="json"), {"duration": 5.0, "format_name": None}),
        queue=celery_baseline.QUEUE,
    ).get(timeout=60)

    assert result["key"] == "out/trim.mp4"
    assert set(result["phases"]) == {"download", "ffmpeg", "upload"}
    local = tmp_path / "trim.mp4"
    s3_client.download_file(bucket_out, "out/trim.mp4", str(local))
    assert result["size"] == local.stat().st_size
    probe = ffprobe(local)
    assert stream(probe, "video")["codec_name"] == "h264"
    assert stream(probe, "audio")["codec_name"] == "aac"
    # A copy cut starts at the keyframe at or before 1 s (one per second in this clip).
    assert 1.9 <= float(probe["format"]["duration"]) <= 3.1
