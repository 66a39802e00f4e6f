"""Gateway throughput and latency: one uvicorn worker (`python -m mpr_gateway`), load from a
separate process on loopback (bench/_http_load.py), bounded in requests and time.

Targets (issue 5): GET /api/jobs/{id} >= 1,500 req/s; POST /api/jobs >= 500 req/s;
p99 <= 25 ms at 200 req/s. Runs against the local RabbitMQ (a throw-away vhost) and S3 (a
fresh bucket pair), once on SQLite (a temp file) and once on PostgreSQL (a throw-away
database on the local server, skipped when none answers). BENCH_DATABASES=sqlite limits the
runs; BENCH_DATABASE_URL runs only on that database (it must be empty and migrated);
BENCH_SCALE=0.2 sends a fifth of the requests for a quick look.

Besides req/s and latency it reports the gateway's CPU time per request (its process,
every thread): on a shared 2-core machine req/s moves with whatever else runs, CPU per
request much less.

    uv run python -m bench gateway
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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.migrate import upgrade
from mpr_shared.db.models import Asset, GatewayOutbox, Job
from tests.support.endpoints import LOCAL_POSTGRES, LOCAL_S3, amqp_endpoint, port_open

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
API_KEY = "bench-" + uuid.uuid4().hex
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
CONNECTIONS = 32  # closed-loop clients for the throughput runs
RATE = 200.0  # req/s for the latency runs

# scenario: (method, requests, req/s or 0 for as fast as answers come, target, unit)
SCENARIOS = {
    "GET /api/jobs/{id}": ("GET", 10_000, 0, 1500, "req/s"),
    "POST /api/jobs": ("POST", 4_000, 0, 500, "req/s"),
    "GET /api/jobs/{id} @200/s": ("GET", 2_000, RATE, 25.0, "p99 ms"),
    "POST /api/jobs @200/s": ("POST", 2_000, RATE, 25.0, "p99 ms"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all threads), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    url: str, *, requests: int, rate: float = 0, method: str = "GET", body: str = "", pid: int
) -> dict:
    """One run of the load generator; adds the gateway's CPU ms per request."""
    args = [sys.executable, "-m", "bench._http_load", url, "--method", method]
    args += ["--requests", str(max(50, int(requests * SCALE)))]
    args += ["--connections", str(16 if rate else CONNECTIONS)]
    args += ["--header", f"Authorization: Bearer {API_KEY}"]
    if body:
        args += ["--header", "Content-Type: application/json", "--body", body]
    if rate:
        args += ["--rate", str(rate)]
    before = cpu_seconds(pid)
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT, timeout=120)
    after = cpu_seconds(pid)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if before is not None and after is not None:
        result["cpu_ms"] = round((after - before) * 1000 / result["requests"], 3)
    return result


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


def gateway_env(
    port: int, amqp_url: str, database_url: str, buckets: tuple[str, str], api_key: str
) -> dict[str, str]:
    """A benchmark gateway's environment: quiet, on loopback, the local S3 server."""
    return {
        **os.environ,
        "MPR_ENV": "development",
        "LOG_LEVEL": "WARNING",
        "ACCESS_LOG": "false",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "AMQP_URL": amqp_url,
        "DATABASE_URL": database_url,
        "MPR_API_KEYS": f"bench:{api_key}",
        "S3_ENDPOINT_URL": LOCAL_S3,
        "S3_BUCKET_IN": buckets[0],
        "S3_BUCKET_OUT": buckets[1],
    }


def gateway_process(env: dict[str, str], port: int) -> contextlib.AbstractContextManager:
    return service_process("gateway", env, port)


@contextlib.contextmanager
def service_process(
    service: str, env: dict[str, str], port: int, ready: str = "/api/health"
) -> Iterator[subprocess.Popen]:
    """``python -m mpr_<service>``, once ``ready`` on ``port`` answers; stopped after."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", f"mpr_{service}"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode()[-3000:]
                    raise RuntimeError(f"{service} did not start:\n" + tail) from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def databases(tmp: str) -> Iterator[list[tuple[str, str]]]:
    """(label, URL) of each database to run on; throw-away ones are dropped afterwards."""
    if url := os.environ.get("BENCH_DATABASE_URL"):
        yield [(make_url(url).get_backend_name(), url)]
        return
    wanted = os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")
    chosen: list[tuple[str, str]] = []
    if "sqlite" in wanted:
        sqlite = f"sqlite+aiosqlite:///{tmp}/bench.db"
        upgrade(sqlite)
        chosen.append(("sqlite", sqlite))
    created = None
    if "postgresql" in wanted:
        if port_open(LOCAL_POSTGRES, 5432):
            created = f"mpr_bench_{uuid.uuid4().hex[:10]}"
            _admin_exec(f'CREATE DATABASE "{created}"')
            server = make_url(LOCAL_POSTGRES).set(drivername="postgresql+asyncpg")
            postgres = server.set(database=created).render_as_string(hide_password=False)
            upgrade(postgres)
            chosen.append(("postgresql", postgres))
        else:
            print(f"PostgreSQL not reachable at {LOCAL_POSTGRES}: skipped")
    try:
        yield chosen
    finally:
        if created:
            _admin_exec(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


def _admin_exec(sql: str) -> None:
    import asyncpg

    url = make_url(LOCAL_POSTGRES)

    async def run() -> None:
        conn = await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, database=url.database
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def local_s3() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=LOCAL_S3,
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
    )


def each_database(run_on: Callable[[str, str, str, str], T]) -> dict[str, T]:
    """``run_on(database_url, amqp_url, bucket_in, bucket_out)`` on each database, by label."""
    runs: dict[str, T] = {}
    with (
        bench_buckets(local_s3()) as (bucket_in, bucket_out),
        tempfile.TemporaryDirectory() as tmp,
        databases(tmp) as chosen,
        amqp_endpoint() as amqp_url,
    ):
        for label, database_url in chosen:
            runs[label] = run_on(database_url, amqp_url, bucket_in, bucket_out)
    return runs


def main() -> None:
    load_before = os.getloadavg()[0]
    runs = each_database(run_on)
    report(runs, load_before, os.getloadavg()[0])


@contextlib.contextmanager
def bench_buckets(s3: Any) -> Iterator[tuple[str, str]]:
    """A fresh (input, output) bucket pair on the local S3 server, emptied and deleted after."""
    suffix = uuid.uuid4().hex[:8]
    pair = (f"mpr-bench-in-{suffix}", f"mpr-bench-out-{suffix}")
    for bucket in pair:
        s3.create_bucket(Bucket=bucket)
    try:
        yield pair
    finally:
        for bucket in pair:
            with contextlib.suppress(Exception):
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    for item in page.get("Contents", ()):
                        s3.delete_object(Bucket=bucket, Key=item["Key"])
                s3.delete_bucket(Bucket=bucket)


def run_on(
    database_url: str, amqp_url: str, bucket_in: str, bucket_out: str
) -> tuple[dict[str, dict], tuple[int, int]]:
    """Seed, start a gateway, run every scenario, wait for the outbox relay to catch up."""
    asset_id, job_id = asyncio.run(seed(database_url, bucket_in, bucket_out))
    port = free_port()
    env = gateway_env(port, amqp_url, database_url, (bucket_in, bucket_out), API_KEY)
    base = f"http://127.0.0.1:{port}"
    urls = {"GET": f"{base}/api/jobs/{job_id}", "POST": f"{base}/api/jobs"}
    body = json.dumps({"asset_id": str(asset_id), "kind": "transcode", "preset": "h264-720p"})
    results: dict[str, dict] = {}
    with gateway_process(env, port) as proc:
        # Warm-up: connections, pools, prepared statements, caches.
        load(urls["GET"], requests=1000, pid=proc.pid)
        load(urls["POST"], requests=300, method="POST", body=body, pid=proc.pid)
        for name, (method, requests, rate, _target, _unit) in SCENARIOS.items():
            results[name] = load(
                urls[method],
                requests=requests,
                rate=rate,
                method=method,
                body=body if method == "POST" else "",
                pid=proc.pid,
            )
            if method == "POST":
                # Accepted jobs still waiting in the outbox when the load stopped, and how
                # long the relay took to publish them: is the relay keeping pace?
                started = time.monotonic()
                results[name]["backlog"] = backlog = asyncio.run(outbox_counts(database_url))[1]
                while backlog and time.monotonic() - started < 60:
                    time.sleep(0.2)
                    backlog = asyncio.run(outbox_counts(database_url))[1]
                results[name]["drain_s"] = round(time.monotonic() - started, 1)
        counts = asyncio.run(outbox_counts(database_url))
    return results, counts


def report(
    runs: dict[str, tuple[dict[str, dict], tuple[int, int]]], load_before: float, load_after: float
) -> None:
    print(
        f"one uvicorn worker, load from a separate process ({CONNECTIONS} connections for "
        f"req/s, {RATE:g} req/s open loop for p99); load average {load_before:.1f} before, "
        f"{load_after:.1f} after, on {os.cpu_count()} cores"
    )
    header = f"{'database':10} {'scenario':26} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
    print(f"{header} {'cpu ms/req':>10}  {'target':>14}  result  notes")
    for label, (results, (total, pending)) in runs.items():
        for name, r in results.items():
            _method, _requests, _rate, target, unit = SCENARIOS[name]
            if unit == "req/s":
                ok, wanted = r["rps"] >= target, f">= {target:,} req/s"
            else:
                ok, wanted = r["p99_ms"] <= target, f"p99 <= {target:g} ms"
            row = f"{label:10} {name:26} {r['rps']:>7.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}"
            cpu = r.get("cpu_ms")
            notes = ", ".join(f"{count} x {status}" for status, count in r["statuses"].items())
            if "backlog" in r:
                notes += f"; outbox backlog {r['backlog']} msgs, published in {r['drain_s']} s"
            print(
                f"{row} {cpu if cpu is not None else '-':>10}  {wanted:>14}  "
                f"{'PASS' if ok else 'MISS':6}  {notes}"
            )
        print(
            f"{label:10} outbox: {total - pending}/{total} messages published with confirms "
            f"({pending} pending)"
        )


if __name__ == "__main__":
    main()
