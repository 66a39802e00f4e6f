"""Gateway throughput and latency: one uvicorn worker (`python -m mpr_gateway`), load from a
separate process on loopback (bench/_http_load.py), bounded in requests and time.

Targets (issue 5): GET /api/jobs/{id} >= 1,500 req/s; POST /api/jobs >= 500 req/s;
p99 <= 25 ms at 200 req/s. Runs against the local RabbitMQ (a throw-away vhost), S3 (a fresh
bucket pair) and a SQLite database in a temp dir (BENCH_DATABASE_URL overrides it, e.g. with
a PostgreSQL database; it must be empty and migrated).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
from sqlalchemy import func, insert, select

from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.migrate import upgrade
from mpr_shared.db.models import Asset, GatewayOutbox, Job
from tests.support.endpoints import LOCAL_S3, amqp_endpoint

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-" + uuid.uuid4().hex
TARGETS = {"get_rps": 1500, "post_rps": 500, "p99_ms": 25.0}
SCALE = float(os.environ.get("BENCH_SCALE", "1"))  # fewer requests for a quick look: 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(
    url: str, *, requests: int, connections: int = 16, rate: float = 0, method="GET", body: str = ""
) -> dict:
    headers = [f"Authorization: Bearer {API_KEY}"]
    if body:
        headers.append("Content-Type: application/json")
    args = [
        sys.executable,
        "-m",
        "bench._http_load",
        url,
        "--method",
        method,
        "--requests",
        str(max(50, int(requests * SCALE))),
        "--connections",
        str(connections),
    ]
    args += [a for h in headers for a in ("--header", h)]
    if body:
        args += ["--body", body]
    if rate:
        args += ["--rate", str(rate)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def seed(database_url: str, bucket_in: str, bucket_out: str) -> tuple[uuid.UUID, uuid.UUID]:
    """One registered asset and one completed job with an output (as the catalog and the
    transcoder would have left them)."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    asset_id, job_id = uuid.uuid4(), uuid.uuid4()
    async with session_factory(engine)() as session:
        await session.execute(
            insert(Asset.__table__).values(
                id=asset_id,
                bucket=bucket_in,
                key="bench/clip.mp4",
                media_type="video",
                size_bytes=1000,
                etag="e",
                status="active",
                probe_status="ok",
                duration_seconds=60.0,
                created_at=now,
                updated_at=now,
            )
        )
        output = f"bench/clip/{job_id}/h264-720p.mp4"
        await session.execute(
            insert(Job.__table__).values(
                id=job_id,
                asset_id=asset_id,
                source_bucket=bucket_in,
                source_key="bench/clip.mp4",
                kind="transcode",
                preset="h264-720p",
                spec={"kind": "transcode", "preset": "h264-720p"},
                output_bucket=bucket_out,
                output_key=output,
                priority=0,
                status="completed",
                attempt=1,
                progress=100.0,
                worker="bench",
                outputs=[{"key": output, "bucket": bucket_out, "size_bytes": 123}],
                created_at=now,
                updated_at=now,
                started_at=now,
                finished_at=now,
            )
        )
        await session.commit()
    await engine.dispose()
    return asset_id, job_id


async def outbox_counts(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        total = await session.scalar(select(func.count()).select_from(GatewayOutbox))
        pending = await session.scalar(
            select(func.count())
            .select_from(GatewayOutbox)
            .where(GatewayOutbox.published_at.is_(None))
        )
    await engine.dispose()
    return int(total or 0), int(pending or 0)


@contextlib.contextmanager
def gateway_process(env: dict[str, str], port: int):
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpr_gateway"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode()[-3000:]
                    raise RuntimeError("gateway did not start:\n" + tail) from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=LOCAL_S3,
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
    )
    suffix = uuid.uuid4().hex[:8]
    bucket_in, bucket_out = f"mpr-bench-in-{suffix}", f"mpr-bench-out-{suffix}"
    for bucket in (bucket_in, bucket_out):
        s3.create_bucket(Bucket=bucket)
    tmp = tempfile.TemporaryDirectory()
    database_url = (
        os.environ.get("BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp.name}/bench.db"
    )
    try:
        if "BENCH_DATABASE_URL" not in os.environ:
            upgrade(database_url)
        asset_id, job_id = asyncio.run(seed(database_url, bucket_in, bucket_out))
        with amqp_endpoint() as amqp_url:
            port = free_port()
            env = {
                **os.environ,
                "MPR_ENV": "development",
                "LOG_LEVEL": "WARNING",
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(port),
                "AMQP_URL": amqp_url,
                "DATABASE_URL": database_url,
                "MPR_API_KEYS": f"bench:{API_KEY}",
                "S3_ENDPOINT_URL": LOCAL_S3,
                "S3_BUCKET_IN": bucket_in,
                "S3_BUCKET_OUT": bucket_out,
            }
            with gateway_process(env, port):
                results = run(f"http://127.0.0.1:{port}", asset_id, job_id)
                deadline = time.monotonic() + 60
                while (counts := asyncio.run(outbox_counts(database_url)))[
                    1
                ] and time.monotonic() < deadline:
                    time.sleep(0.5)
        report(results, database_url, counts)
    finally:
        for bucket in (bucket_in, bucket_out):
            with contextlib.suppress(Exception):
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    for item in page.get("Contents", ()):
                        s3.delete_object(Bucket=bucket, Key=item["Key"])
                s3.delete_bucket(Bucket=bucket)
        tmp.cleanup()


def run(base: str, asset_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, dict]:
    job_url = f"{base}/api/jobs/{job_id}"
    body = json.dumps({"asset_id": str(asset_id), "kind": "transcode", "preset": "h264-720p"})
    load(job_url, requests=1000)  # warm-up: connections, caches, JIT-free but lazy imports
    load(f"{base}/api/jobs", requests=200, method="POST", body=body)
    return {
        "GET /api/jobs/{id} (max)": load(job_url, requests=15000, connections=32),
        "POST /api/jobs (max)": load(
            f"{base}/api/jobs", requests=5000, connections=32, method="POST", body=body
        ),
        "GET /api/jobs/{id} @200/s": load(job_url, requests=2000, rate=200),
        "POST /api/jobs @200/s": load(
            f"{base}/api/jobs", requests=2000, rate=200, method="POST", body=body
        ),
    }


def report(results: dict[str, dict], database_url: str, counts: tuple[int, int]) -> None:
    print(
        f"database: {database_url.split(':')[0]}; one uvicorn worker; load from a separate process"
    )
    print(f"{'scenario':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for name, r in results.items():
        numbers = f"{r['rps']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}"
        print(f"{name:28} {numbers}  {r['statuses']}")
    total, pending = counts
    print(f"outbox: {total - pending}/{total} messages published by the relay ({pending} pending)")
    checks = {
        "GET /api/jobs/{id} >= 1500 req/s": results["GET /api/jobs/{id} (max)"]["rps"]
        >= TARGETS["get_rps"],
        "POST /api/jobs >= 500 req/s": results["POST /api/jobs (max)"]["rps"]
        >= TARGETS["post_rps"],
        "p99 <= 25 ms at 200 req/s (GET)": results["GET /api/jobs/{id} @200/s"]["p99_ms"]
        <= TARGETS["p99_ms"],
        "p99 <= 25 ms at 200 req/s (POST)": results["POST /api/jobs @200/s"]["p99_ms"]
        <= TARGETS["p99_ms"],
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")


if __name__ == "__main__":
    main()
