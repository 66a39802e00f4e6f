"""Catalog benchmark: scans against a bare listing, notification latency, probe input mode.

Run from the repository root against the local infrastructure (`make infra`):

    uv run python -m bench catalog        # or: uv run python -m bench.bench_catalog

It creates a temporary bucket with BENCH_CATALOG_OBJECTS (10,000) tiny objects, a temporary
SQLite file (and a PostgreSQL database when one answers on 127.0.0.1:5432), a throw-away
RabbitMQ vhost when rabbitmqctl is available, and prints one table:

- scan of all-new objects ÷ a bare ListObjectsV2 pass over the same bucket (target ≤ 2);
- rescan of the same, all known ÷ the bare pass (target ≤ 1.3);
  each ratio is scan ÷ the bare pass timed right next to it, median of BENCH_CATALOG_RUNS;
- bucket notification (MinIO format, through RabbitMQ) → asset row committed: p50 ≤ 50 ms,
  with the probe excluded;
- ffprobe through a presigned URL vs download-then-probe (why the catalog probes by URL).

Each ratio's two sides run in the same process, minutes apart at most. Everything it
created is removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aio_pika
import boto3
from botocore.config import Config
from sqlalchemy import select
from sqlalchemy.engine import make_url

from mpr_catalog.adapters.s3 import S3ObjectLister
from mpr_catalog.bootstrap import Container, bootstrap, running
from mpr_catalog.settings import CatalogSettings
from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.migrate import upgrade
from mpr_shared.db.models import Asset
from tests.support.databases import admin_exec

AMQP = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
S3_URL = os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:9000")
S3_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "minioadmin")
S3_SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "minioadmin")
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
OBJECTS = int(os.environ.get("BENCH_CATALOG_OBJECTS", "10000"))
RUNS = int(os.environ.get("BENCH_CATALOG_RUNS", "3"))
NOTIFICATIONS = int(os.environ.get("BENCH_CATALOG_NOTIFICATIONS", "200"))
UPLOAD_THREADS = 16  # bounded: the S3 server and 2 cores share the machine


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=S3_URL,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            max_pool_connections=UPLOAD_THREADS * 2,
        ),
    )


# ---------------------------------------------------------------------------- fixtures


@contextlib.contextmanager
def temp_bucket(client) -> Iterator[str]:
    bucket = f"mpr-bench-catalog-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)


def upload_objects(client, bucket: str, count: int) -> None:
    def put(n: int) -> None:
        client.put_object(Bucket=bucket, Key=f"bench/{n // 1000:03}/clip {n:06}.mp4", Body=b"x")

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        for _ in pool.map(put, range(count)):
            pass


@contextlib.contextmanager
def sqlite_url(workdir: Path) -> Iterator[str]:
    path = workdir / f"catalog-{uuid.uuid4().hex[:6]}.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    yield url


def postgres_available() -> bool:
    url = make_url(POSTGRES)
    with contextlib.suppress(OSError):
        import socket

        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), 2):
            return True
    return False


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    admin = make_url(POSTGRES)
    name = f"mpr_bench_{uuid.uuid4().hex[:10]}"
    admin_exec(POSTGRES, f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(drivername="postgresql+asyncpg", database=name)
        rendered = url.render_as_string(hide_password=False)
        upgrade(rendered)
        yield rendered
    finally:
        admin_exec(POSTGRES, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def amqp_vhost() -> Iterator[str]:
    """A throw-away vhost (rabbitmqctl), else the URL as given."""
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        yield AMQP
        return
    vhost = f"mpr-bench-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> None:
        subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)

    try:
        run("add_vhost", vhost)
        run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (subprocess.SubprocessError, OSError):
        yield AMQP
        return
    try:
        yield AMQP.rstrip("/") + "/" + vhost
    finally:
        with contextlib.suppress(Exception):
            run("delete_vhost", vhost)


# ---------------------------------------------------------------------------- measures


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bare_list(client, bucket: str) -> int:
    """What any scan must at least do: page through ListObjectsV2 and touch every entry."""
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 1000}
    ):
        for item in page.get("Contents", ()):
            count += bool(item["Key"])
    return count


def catalog_settings(bucket: str, database_url: str, amqp_url: str = AMQP) -> CatalogSettings:
    return CatalogSettings(
        AMQP_URL=amqp_url,
        S3_ENDPOINT_URL=S3_URL,
        AWS_ACCESS_KEY_ID=S3_KEY,
        AWS_SECRET_ACCESS_KEY=S3_SECRET,
        S3_BUCKET_IN=bucket,
        DATABASE_URL=database_url,
        MPR_ENV="test",
    )


def make_catalog(client, bucket: str, database_url: str) -> Container:
    """The catalog's composition, not started: scans run inline, probes are never started."""
    return bootstrap(catalog_settings(bucket, database_url), lister=S3ObjectLister(client))


def scan_twice(client, bucket: str, database_url: str) -> tuple[float, float]:
    """(seconds of a scan of all-new objects, seconds of the rescan) on a fresh database."""

    async def go() -> tuple[float, float]:
        catalog = make_catalog(client, bucket, database_url)
        try:
            started = time.perf_counter()
            first = await catalog.scanner.scan()
            new = time.perf_counter() - started
            started = time.perf_counter()
            second = await catalog.scanner.scan()
            known = time.perf_counter() - started
        finally:
            await catalog.engine.dispose()
        assert first.registered == OBJECTS, first.registered
        assert second.skipped == OBJECTS and second.registered == 0, second
        return new, known

    return asyncio.run(go())


def notification_latency(client, bucket: str, database_url: str, amqp_url: str) -> list[float]:
    """Seconds from publishing a MinIO-format notification to its asset row being visible."""

    async def go() -> list[float]:
        settings = catalog_settings(bucket, database_url, amqp_url)
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        samples: list[float] = []
        async with running(bootstrap(settings)) as runtime:
            await runtime.probes.stop()  # the latency target excludes the probe
            connection = await aio_pika.connect(amqp_url)
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                settings.s3_events_exchange,
                aio_pika.ExchangeType.TOPIC,
                durable=True,
                auto_delete=False,
            )
            for n in range(NOTIFICATIONS + 10):
                key = f"notify/clip {n:05}.mp4"
                body = minio_body(bucket, key, f"{time.time_ns():X}")
                started = time.perf_counter()
                await exchange.publish(
                    aio_pika.Message(body, content_type="application/json"),
                    routing_key=settings.events_routing_key,
                )
                async with sessions() as session:
                    query = select(Asset.id).where(Asset.bucket == bucket, Asset.key == key)
                    while (await session.execute(query)).first() is None:
                        await session.rollback()
                        await asyncio.sleep(0.001)
                if n >= 10:  # warm-up: connections, statement caches
                    samples.append(time.perf_counter() - started)
            await connection.close()
        await engine.dispose()
        return samples

    return asyncio.run(go())


def minio_body(bucket: str, key: str, sequencer: str) -> bytes:
    """The body MinIO's AMQP target publishes for a PUT (see tests/unit/catalog/samples.py)."""
    import json

    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "eventName": "s3:ObjectCreated:Put",
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "::1"},
        "responseElements": {"x-amz-request-id": "17D2F4A6C0B1E3F5"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "minioadmin"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": quote_plus(key, safe=""),
                "size": 1,
                "eTag": "9dd4e461268c8034f5c8564e155c67a6",
                "contentType": "video/mp4",
                "sequencer": sequencer,
            },
        },
        "source": {"host": "::1", "port": "", "userAgent": "MinIO (linux; amd64)"},
    }
    return json.dumps(
        {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{key}", "Records": [record]}
    ).encode()


def probe_modes(client, bucket: str, workdir: Path) -> tuple[float, float, int]:
    """Median seconds of ffprobe on a presigned URL vs download + ffprobe.

    The file is ~150 MB with the moov atom at the end (no faststart), the worst case for
    probing over HTTP: ffprobe must seek there with range requests.
    """
    clip, big = workdir / "probe-10s.mp4", workdir / "probe.mp4"
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    subprocess.run(
        [
            *ffmpeg, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "12M", str(clip),
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    # Ten times as long by stream copy: no encoding, so cheap on two cores.
    subprocess.run(
        [*ffmpeg, "-stream_loop", "9", "-i", str(clip), "-c", "copy", str(big)],
        check=True,
        timeout=300,
    )
    clip = big
    client.upload_file(str(clip), bucket, "probe/big.mp4")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "probe/big.mp4"}, ExpiresIn=600
    )
    probe = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json"]

    def by_url() -> None:
        subprocess.run([*probe, "-protocol_whitelist", "https,http,tls,tcp", url], check=True,
                       capture_output=True, timeout=120)  # fmt: skip

    def by_download() -> None:
        local = workdir / "downloaded.mp4"
        client.download_file(bucket, "probe/big.mp4", str(local))
        subprocess.run([*probe, str(local)], check=True, capture_output=True, timeout=120)
        local.unlink()

    url_s = statistics.median(timed(by_url) for _ in range(RUNS))
    download_s = statistics.median(timed(by_download) for _ in range(RUNS))
    return url_s, download_s, clip.stat().st_size


# ---------------------------------------------------------------------------- report


def main() -> None:
    client = s3_client()
    rows: list[tuple[str, str, str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="mpr-bench-catalog-") as tmp,
        temp_bucket(client) as bucket,
    ):
        workdir = Path(tmp)
        started = time.perf_counter()
        upload_objects(client, bucket, OBJECTS)
        print(f"uploaded {OBJECTS} objects in {time.perf_counter() - started:.1f} s", flush=True)
        for _ in range(2):  # warm-up: connections, the server's caches after the upload
            bare_list(client, bucket)

        databases = [("sqlite", lambda: sqlite_url(workdir))]
        if postgres_available():
            databases.append(("postgresql", postgres_url))
        bare_runs: list[float] = []
        for name, make_db in databases:
            new_ratios, known_ratios, new_runs, known_runs = [], [], [], []
            for _ in range(RUNS):
                # Each scan pair is compared with bare passes right before and after it.
                before = timed(lambda: bare_list(client, bucket))
                with make_db() as url:
                    new_s, known_s = scan_twice(client, bucket, url)
                after = timed(lambda: bare_list(client, bucket))
                bare_runs += [before, after]
                new_ratios.append(new_s / before)
                known_ratios.append(known_s / after)
                new_runs.append(new_s)
                known_runs.append(known_s)
            print(
                f"{name}: new/bare {', '.join(f'{r:.2f}' for r in new_ratios)}; "
                f"known/bare {', '.join(f'{r:.2f}' for r in known_ratios)}",
                flush=True,
            )
            new, known = statistics.median(new_runs), statistics.median(known_runs)
            new_ratio, known_ratio = statistics.median(new_ratios), statistics.median(known_ratios)
            rows.append(
                (f"scan, {OBJECTS} new ({name})", f"{new:.2f} s", f"{new_ratio:.2f}x", "≤ 2")
            )
            rows.append(
                (
                    f"rescan, {OBJECTS} known ({name})",
                    f"{known:.2f} s",
                    f"{known_ratio:.2f}x",
                    "≤ 1.3",
                )
            )
        bare = statistics.median(bare_runs)
        rows.insert(
            0, (f"bare ListObjectsV2 pass, {OBJECTS} objects", f"{bare:.2f} s", "1.00x", "")
        )

        with sqlite_url(workdir) as url, amqp_vhost() as amqp_url:
            latencies = notification_latency(client, bucket, url, amqp_url)
        p50 = statistics.median(latencies) * 1000
        p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
        rows.append(("notification → asset row, p50 (sqlite)", f"{p50:.1f} ms", "", "≤ 50 ms"))
        rows.append(("notification → asset row, p95 (sqlite)", f"{p95:.1f} ms", "", ""))

        url_s, download_s, size = probe_modes(client, bucket, workdir)
        label = f"ffprobe, {size / 1e6:.0f} MB MP4 (moov at end)"
        rows.append((f"{label}: presigned URL", f"{url_s:.2f} s", "1.00x", ""))
        rows.append(
            (f"{label}: download + probe", f"{download_s:.2f} s", f"{download_s / url_s:.2f}x", "")
        )

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'time':>10}  {'ratio':>7}  target")
    for name, value, ratio, target in rows:
        print(f"{name:<{width}}  {value:>10}  {ratio:>7}  {target}")


if __name__ == "__main__":
    main()
