"""The Celery baseline: MPR's seed executor as its users would write it.

One Celery task (``acks_late``, prefetch 1, the default prefork pool, RPC result backend) that
downloads the source from S3 with boto3, runs the transcoder's FFmpeg command for the job,
uploads the output and returns. It keeps no job state, publishes no events (and no publisher
confirms), and does not verify the output: what MPR adds on top costs the time that
bench/bench_celery.py measures against this.

bench/bench_celery.py starts the worker (``python -m celery -A bench.celery_baseline worker``)
with the environment below and sends it jobs:
BENCH_CELERY_BROKER_URL, BENCH_CELERY_QUEUE, S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from celery import Celery

from bench._media import plan_for
from mpr_shared.contracts import ProcessMedia
from mpr_transcoder.domain.ffmpeg_args import source_extension
from mpr_transcoder.domain.media import MediaInfo

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "mpr-bench-celery")

app = Celery("mpr_bench_baseline")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    # Results travel back over RabbitMQ to the caller's reply queue: no polling.
    # https://docs.celeryq.dev/en/stable/userguide/tasks.html#rpc-result-backend-rabbitmq-qpid
    result_backend="rpc://",
    # Ack after the task returns, one message at a time per worker process: the setting
    # Celery's docs give for long tasks, and the closest to MPR's ack-after-upload.
    # https://docs.celeryq.dev/en/stable/userguide/optimizing.html#prefetch-limits
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@functools.cache
def s3() -> Any:
    """One boto3 client per worker process (created after the prefork pool forks)."""
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:9000"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "minioadmin"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "minioadmin"),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


@app.task(name="bench.process_media", acks_late=True)
def process_media(job_json: dict, source: dict) -> dict:
    """Download, FFmpeg, upload; the output's key and size and each step's time (ms)."""
    job = ProcessMedia.model_validate(job_json)
    phases: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round((now - mark) * 1000, 1)
        mark = now

    with tempfile.TemporaryDirectory(prefix="celery-job-") as tmp:
        work = Path(tmp)
        local = work / f"source{source_extension(job)}"
        s3().download_file(job.source_bucket, job.source_key, str(local))
        lap("download")
        plan = plan_for(job, MediaInfo(**source), local, work)
        subprocess.run(plan.args, check=True, stdout=subprocess.DEVNULL, timeout=600)
        lap("ffmpeg")
        output = plan.outputs[0].path
        size = output.stat().st_size
        s3().upload_file(str(output), job.output_bucket, job.output_key)
        lap("upload")
    return {"key": job.output_key, "size": size, "phases": phases}
