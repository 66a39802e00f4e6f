"""Uploads through presigned multipart URLs (POST /api/uploads) vs boto3's own upload_file.

Target (issue 11): a client with no S3 credentials, uploading through the gateway's presigned
UploadPart URLs, reaches >= 90% of the throughput boto3's `upload_file` (managed multipart,
its default TransferConfig: 8 MiB parts, 10 threads) gets from the same S3 server for the
same file, in the same run. The presigned client sends the same part size with the same number
of threads (one httpx connection each); its time includes POST /api/uploads and
POST …/complete (which lists the parts and completes the upload), so it pays for every
gateway round trip. Registration is not waited for (UPLOAD_REGISTER_TIMEOUT_SECONDS=0; no
catalog runs): boto3 registers nothing either.

A gateway process (`python -m mpr_gateway`) on SQLite, a throw-away RabbitMQ vhost and fresh
buckets on the local S3 server; ROUNDS rounds of A then B (alternating which goes first),
medians. BENCH_UPLOAD_MB sets the file size (default 256).

    uv run python -m bench uploads
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
from boto3.s3.transfer import TransferConfig

from bench.bench_gateway import bench_buckets, free_port, gateway_env, gateway_process
from mpr_shared.db.migrate import upgrade
from tests.support.endpoints import LOCAL_S3, amqp_endpoint

MiB = 1024 * 1024
SIZE = int(os.environ.get("BENCH_UPLOAD_MB", "256")) * MiB
ROUNDS = 5
BOTO3 = TransferConfig()  # boto3's own defaults: what `upload_file` does out of the box
PART_SIZE = BOTO3.multipart_chunksize
THREADS = BOTO3.max_request_concurrency
API_KEY = "bench-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TARGET = 0.90


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=LOCAL_S3,
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
    )


def with_boto3(s3, path: Path, bucket: str, key: str) -> float:
    started = time.perf_counter()
    s3.upload_file(str(path), bucket, key, Config=BOTO3)
    return time.perf_counter() - started


class PresignedClient:
    """What a CLI without S3 credentials does: ask the gateway, PUT the parts, complete."""

    def __init__(self, base: str) -> None:
        self.api = httpx.Client(base_url=base, headers=AUTH, timeout=60)
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(THREADS)

    def _s3(self) -> httpx.Client:
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(timeout=120)
        return self.local.client

    def _put(self, fd: int, offset: int, length: int, url: str) -> None:
        self._s3().put(url, content=os.pread(fd, length, offset)).raise_for_status()

    def upload(self, path: Path, key: str) -> float:
        started = time.perf_counter()
        size = path.stat().st_size
        created = self.api.post("/api/uploads", json={"key": key, "size": size})
        created.raise_for_status()
        upload = created.json()
        part = upload["part_size"]
        fd = os.open(path, os.O_RDONLY)
        try:
            futures = [
                self.pool.submit(self._put, fd, (p["part_number"] - 1) * part, part, p["url"])
                for p in upload["parts"]
            ]
            for future in futures:
                future.result()
        finally:
            os.close(fd)
        self.api.post(f"/api/uploads/{upload['id']}/complete").raise_for_status()
        return time.perf_counter() - started

    def close(self) -> None:
        self.pool.shutdown()
        self.api.close()


def main() -> None:
    s3 = s3_client()
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {"boto3": [], "presigned": []}
    with bench_buckets(s3) as (bucket_in, bucket_out), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.mp4"
        with path.open("wb") as f:
            for _ in range(SIZE // MiB):
                f.write(os.urandom(MiB))
        with amqp_endpoint() as amqp_url:
            run(s3, path, amqp_url, bucket_in, bucket_out, Path(tmp), times)
    report(times, load_before, os.getloadavg()[0])


def run(
    s3,
    path: Path,
    amqp_url: str,
    bucket_in: str,
    bucket_out: str,
    tmp: Path,
    times: dict[str, list[float]],
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    upgrade(database_url)
    port = free_port()
    env = gateway_env(port, amqp_url, database_url, (bucket_in, bucket_out), API_KEY) | {
        "MAX_UPLOAD_BYTES": str(max(SIZE, MiB) * 2),
        "UPLOAD_MULTIPART_THRESHOLD_BYTES": str(BOTO3.multipart_threshold),
        "UPLOAD_PART_SIZE_BYTES": str(max(PART_SIZE, 5 * MiB)),
        "UPLOAD_REGISTER_TIMEOUT_SECONDS": "0",
        "UPLOAD_SWEEP_SECONDS": "0",
    }
    with gateway_process(env, port):
        client = PresignedClient(f"http://127.0.0.1:{port}")
        try:
            # Warm-up: connections, the gateway's first requests, the server's volumes.
            with_boto3(s3, path, bucket_in, "warm/boto3.mp4")
            client.upload(path, "warm/presigned.mp4")
            for n in range(ROUNDS):
                order = ("boto3", "presigned") if n % 2 == 0 else ("presigned", "boto3")
                for side in order:
                    key = f"round{n}/{side}.mp4"  # a media key, as uploads require
                    if side == "boto3":
                        times[side].append(with_boto3(s3, path, bucket_in, key))
                    else:
                        times[side].append(client.upload(path, key))
                    s3.delete_object(Bucket=bucket_in, Key=key)
        finally:
            client.close()


def report(times: dict[str, list[float]], load_before: float, load_after: float) -> None:
    mb = SIZE / MiB
    print(
        f"{mb:.0f} MiB file, {PART_SIZE // MiB} MiB parts, {THREADS} threads each, "
        f"{ROUNDS} rounds; load average {load_before:.1f} before, {load_after:.1f} after, "
        f"on {os.cpu_count()} cores"
    )
    print(f"{'client':32} {'median s':>9} {'MiB/s':>7}  rounds (s)")
    rates = {}
    for side, label in (
        ("boto3", "boto3 upload_file"),
        ("presigned", "presigned via /api/uploads"),
    ):
        median = statistics.median(times[side])
        rates[side] = mb / median
        rounds = " ".join(f"{t:.2f}" for t in times[side])
        print(f"{label:32} {median:>9.2f} {rates[side]:>7.1f}  {rounds}")
    ratio = rates["presigned"] / rates["boto3"]
    verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
    print(f"presigned / boto3 throughput: {ratio:.2f} (target >= {TARGET:.2f}): {verdict}")
