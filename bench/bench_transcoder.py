"""Transcoder benchmark: end-to-end job time against bare FFmpeg, measured side by side.

Run from the repository root against the local infrastructure (`make infra`):

    uv run python -m bench.bench_transcoder

It uses a throw-away RabbitMQ vhost, fresh buckets and a temporary SQLite file, starts real
replicas (`python -m mpr_transcoder`) and prints one table:

- a 60 s 720p → h264-480p transcode: end-to-end (command published → JobCompleted received)
  ÷ the same FFmpeg command run bare on local files (target ≤ 1.05);
- a stream-copy trim of a short clip: end-to-end minus bare (target ≤ 150 ms);
- throughput of 100 short jobs with 1 and with 2 replicas;
- INPUT_MODE download vs url (presigned URL) for both jobs, which decides the default.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import boto3
from botocore.config import Config

from bench._media import make_clip, plan_for, probe, run_timed, source_info
from mpr_shared.contracts import (
    EVENTS_BY_ROUTING_KEY,
    JobCompleted,
    JobFailed,
    JobSpec,
    ProcessMedia,
)
from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.migrate import upgrade
from mpr_shared.db.models import Job
from mpr_shared.messaging import make_broker, send_command
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import EVENTS, declare_topology
from mpr_transcoder.domain.ffmpeg_args import output_suffix
from mpr_transcoder.domain.media import MediaInfo

ROOT = Path(__file__).resolve().parents[1]
PHASES = re.compile(
    r"job (?P<job>[0-9a-f-]{36}): outputs ready .*; phases \(ms\) (?P<phases>\{.*\})"
)
AMQP = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
S3_URL = os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:9000")
S3_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "minioadmin")
S3_SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "minioadmin")
LONG_RUNS = int(os.environ.get("BENCH_LONG_RUNS", "5"))
TRIM_RUNS = int(os.environ.get("BENCH_TRIM_RUNS", "10"))
THROUGHPUT_JOBS = int(os.environ.get("BENCH_THROUGHPUT_JOBS", "100"))


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        yield AMQP
        return
    name = f"mpr-bench-{os.getpid()}"
    subprocess.run([ctl, "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        [ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield AMQP.rstrip("/") + "/" + name
    finally:
        subprocess.run([ctl, "delete_vhost", name], capture_output=True)


class Bench:
    def __init__(self, amqp_url: str, work: Path) -> None:
        self.amqp_url = amqp_url
        self.work = work
        suffix = uuid.uuid4().hex[:8]
        self.bucket_in, self.bucket_out = f"mpr-bench-in-{suffix}", f"mpr-bench-out-{suffix}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=S3_URL,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )
        self.db = f"sqlite+aiosqlite:///{work / 'bench.db'}"
        self.env = {
            "MPR_ENV": "test",
            "AMQP_URL": amqp_url,
            "S3_ENDPOINT_URL": S3_URL,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "S3_BUCKET_IN": self.bucket_in,
            "S3_BUCKET_OUT": self.bucket_out,
            "DATABASE_URL": self.db,
            "TRANSCODER_WORK_DIR": str(work / "replicas"),
            "LOG_LEVEL": "ERROR",
        }
        self.replicas: list[subprocess.Popen] = []
        self.done: dict[uuid.UUID, asyncio.Future] = {}
        self.recorded: set[uuid.UUID] = set()

    # ------------------------------------------------------------------ setup

    async def __aenter__(self) -> Bench:
        for bucket in (self.bucket_in, self.bucket_out):
            self.s3.create_bucket(Bucket=bucket)
        await asyncio.to_thread(upgrade, self.db)  # alembic runs its own event loop
        self.engine = create_engine(self.db)
        self.broker = make_broker(self.amqp_url, service="bench")
        await self.broker.connect()
        await declare_topology(self.broker, CommonSettings(**self.env))
        self.connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            EVENTS.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="job.*")
        await queue.consume(self._on_event, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop_replicas()
        await self.connection.close()
        await self.broker.stop()
        await self.engine.dispose()
        for bucket in (self.bucket_in, self.bucket_out):
            paginator = self.s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
                if keys:
                    self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            self.s3.delete_bucket(Bucket=bucket)

    async def _on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = EVENTS_BY_ROUTING_KEY[message.routing_key].model_validate_json(message.body)
        future = self.done.get(getattr(event, "job_id", None))
        if future and not future.done() and isinstance(event, JobCompleted | JobFailed):
            future.set_result((time.perf_counter(), event))

    def start_replicas(self, count: int, module: str = "mpr_transcoder", **overrides: str) -> None:
        """Start ``count`` replicas (``python -m module``) and wait until they consume."""
        self.stop_replicas()
        self.generation = getattr(self, "generation", 0) + 1
        logs = [self.work / f"replica-{self.generation}-{i}.log" for i in range(count)]
        for log in logs:
            proc = subprocess.Popen(
                [sys.executable, "-m", module],
                env={**os.environ, **self.env, "LOG_LEVEL": "INFO", **overrides},
                cwd=ROOT,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
            )
            self.replicas.append(proc)
        deadline = time.monotonic() + 60
        while not all("ready (work dir" in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline:
                raise RuntimeError("replicas did not start; see " + str(self.work))
            time.sleep(0.1)
        time.sleep(1.0)  # consumers start right after the lifespan

    def phases(self) -> dict[uuid.UUID, dict[str, float]]:
        """Each job's phase timings (ms), from the replicas' `phases (ms)` log lines."""
        found = {}
        for log in self.work.glob("replica-*.log"):
            for match in PHASES.finditer(log.read_text(errors="replace")):
                found[uuid.UUID(match["job"])] = ast.literal_eval(match["phases"])
        return found

    def ffmpeg_phases(self) -> dict[uuid.UUID, float]:
        """FFmpeg's own run time per job (ms), from the replicas' `phases (ms)` log lines."""
        return {job: float(p["ffmpeg"]) for job, p in self.phases().items()}

    def stop_replicas(self) -> None:
        for proc in self.replicas:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.replicas:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        self.replicas = []

    # ------------------------------------------------------------------ runs

    def command(self, key: str, duration: float, **spec) -> ProcessMedia:
        job_id = uuid.uuid4()
        job = ProcessMedia(
            job_id=job_id,
            correlation_id=str(job_id),
            source_bucket=self.bucket_in,
            source_key=key,
            source_duration=duration,
            spec=JobSpec(**spec),
            output_bucket=self.bucket_out,
            output_key=f"{key.rsplit('.', 1)[0]}/{job_id}/output",
        )
        # The key's extension follows the output, as the gateway's default keys do.
        suffix = output_suffix(job.model_copy(update={"output_key": key}))
        return job.model_copy(update={"output_key": job.output_key + suffix})

    async def record(self, job: ProcessMedia) -> None:
        """Write the job's row, the gateway's part: its outbox commits the row before the
        ProcessMedia goes out, and a replica dead-letters a command without one."""
        if job.job_id in self.recorded:
            return
        async with session_factory(self.engine).begin() as session:
            session.add(
                Job(
                    id=job.job_id,
                    source_bucket=job.source_bucket,
                    source_key=job.source_key,
                    kind=str(job.spec.kind),
                    preset=job.spec.preset,
                    spec=job.spec.model_dump(mode="json"),
                    output_bucket=job.output_bucket,
                    output_key=job.output_key,
                    priority=job.priority,
                    attempt=job.attempt,
                )
            )
        self.recorded.add(job.job_id)

    async def submit(self, job: ProcessMedia) -> asyncio.Future:
        """Publish ``job`` (recorded first); the future resolves with its final event."""
        await self.record(job)
        self.done[job.job_id] = asyncio.get_running_loop().create_future()
        await send_command(self.broker, job, priority=job.priority)
        return self.done[job.job_id]

    async def end_to_end(self, job: ProcessMedia) -> float:
        await self.record(job)  # outside the timing: the gateway's insert is not the replica's
        started = time.perf_counter()
        finished, event = await asyncio.wait_for(await self.submit(job), 900)
        if not isinstance(event, JobCompleted):
            raise RuntimeError(f"job failed: {event}")
        return finished - started

    def bare(self, job: ProcessMedia, local: Path, info: MediaInfo | None = None) -> float:
        """The replica's own FFmpeg command for ``job``, on local files, timed alone
        (``info``: the source's probe, when the caller has it)."""
        workdir = Path(tempfile.mkdtemp(dir=self.work))
        try:
            return run_timed(plan_for(job, info or source_info(job, local), local, workdir).args)
        finally:
            shutil.rmtree(workdir)

    async def throughput(self, key: str, duration: float, jobs: int, replicas: int) -> float:
        self.start_replicas(replicas)
        commands = [
            self.command(key, duration, kind="transcode", preset="h264-480p") for _ in range(jobs)
        ]
        for command in commands:
            await self.record(command)
        started = time.perf_counter()
        futures = [await self.submit(c) for c in commands]
        results = await asyncio.wait_for(asyncio.gather(*futures), 900)
        elapsed = max(t for t, _ in results) - started
        failed = [e for _, e in results if not isinstance(e, JobCompleted)]
        if failed:
            raise RuntimeError(f"{len(failed)} jobs failed: {failed[0]}")
        return jobs / elapsed


async def measure(bench: Bench, clips: dict[str, tuple[Path, str, float]]) -> list[tuple]:
    long_local, long_key, long_seconds = clips["long"]
    short_local, short_key, short_seconds = clips["short"]
    _, tiny_key, tiny_seconds = clips["tiny"]
    rows: list[tuple] = []
    modes: dict[str, dict[str, float]] = {}

    for mode in ("download", "url"):
        bench.start_replicas(1, INPUT_MODE=mode)
        # Warm-up: first-run costs (imports, connections, page cache) are not the steady state.
        await bench.end_to_end(
            bench.command(short_key, short_seconds, kind="trim", start=0.5, end=2)
        )
        long_e2e, long_bare, long_ids = [], [], []
        for _ in range(LONG_RUNS):
            job = bench.command(long_key, long_seconds, kind="transcode", preset="h264-480p")
            long_bare.append(bench.bare(job, long_local))
            long_e2e.append(await bench.end_to_end(job))
            long_ids.append(job.job_id)
        trim_e2e, trim_bare, trim_ids = [], [], []
        for _ in range(TRIM_RUNS):
            job = bench.command(short_key, short_seconds, kind="trim", start=0.5, end=2.0)
            trim_bare.append(bench.bare(job, short_local))
            trim_e2e.append(await bench.end_to_end(job))
            trim_ids.append(job.job_id)
        ffmpeg_ms = bench.ffmpeg_phases()
        # Each end-to-end run is paired with the bare run just before it, so load that drifts
        # on a shared machine hits both sides of a pair alike; the median pair is reported.
        modes[mode] = {
            "long_e2e": statistics.median(long_e2e),
            "long_bare": statistics.median(long_bare),
            "long_ratio": statistics.median(
                e / b for e, b in zip(long_e2e, long_bare, strict=True)
            ),
            "trim_e2e": statistics.median(trim_e2e),
            "trim_bare": statistics.median(trim_bare),
            "trim_overhead": statistics.median(
                e - b for e, b in zip(trim_e2e, trim_bare, strict=True)
            ),
            # The replica logs how long FFmpeg itself ran for each job; end-to-end minus that
            # is the pipeline's own cost, measured without FFmpeg's run-to-run variance.
            "long_pipeline": statistics.median(
                e - ffmpeg_ms[i] / 1000 for e, i in zip(long_e2e, long_ids, strict=True)
            ),
            "trim_pipeline": statistics.median(
                e - ffmpeg_ms[i] / 1000 for e, i in zip(trim_e2e, trim_ids, strict=True)
            ),
        }
    d = modes["download"]
    ratio = d["long_ratio"]
    rows.append(
        (
            "60 s 720p → h264-480p, end-to-end ÷ bare FFmpeg (paired runs)",
            f"{d['long_e2e']:.2f} s vs {d['long_bare']:.2f} s; ratio {ratio:.3f}",
            "≤ 1.05",
            "ok" if ratio <= 1.05 else "MISS",
        )
    )
    steady = (d["long_bare"] + d["long_pipeline"]) / d["long_bare"]
    rows.append(
        (
            "  same, as (bare + pipeline cost outside FFmpeg) ÷ bare",
            f"+{d['long_pipeline'] * 1000:.0f} ms on {d['long_bare']:.2f} s; ratio {steady:.3f}",
            "≤ 1.05",
            "ok" if steady <= 1.05 else "MISS",
        )
    )
    overhead = d["trim_overhead"] * 1000
    rows.append(
        (
            "copy trim of a 3 s clip, end-to-end - bare FFmpeg (paired runs)",
            f"{d['trim_e2e'] * 1000:.0f} ms vs {d['trim_bare'] * 1000:.0f} ms; +{overhead:.0f} ms",
            "≤ 150 ms",
            "ok" if overhead <= 150 else "MISS",
        )
    )
    pipeline = d["trim_pipeline"] * 1000
    rows.append(
        (
            "  same, as the pipeline cost outside FFmpeg",
            f"+{pipeline:.0f} ms",
            "≤ 150 ms",
            "ok" if pipeline <= 150 else "MISS",
        )
    )
    for replicas in (1, 2):
        rate = await bench.throughput(tiny_key, tiny_seconds, THROUGHPUT_JOBS, replicas)
        rows.append(
            (
                f"throughput, {THROUGHPUT_JOBS} x 1 s 320x240 → h264-480p, {replicas} replica(s)",
                f"{rate:.1f} jobs/s",
                "",
                "",
            )
        )
    u = modes["url"]
    rows.append(
        (
            "input: download vs presigned URL, 60 s transcode end-to-end",
            f"{d['long_e2e']:.2f} s vs {u['long_e2e']:.2f} s",
            "choose faster",
            "download" if d["long_e2e"] <= u["long_e2e"] else "url",
        )
    )
    rows.append(
        (
            "input: download vs presigned URL, copy trim end-to-end",
            f"{d['trim_e2e'] * 1000:.0f} ms vs {u['trim_e2e'] * 1000:.0f} ms",
            "choose faster",
            "download" if d["trim_e2e"] <= u["trim_e2e"] else "url",
        )
    )
    return rows


def print_table(rows: list[tuple]) -> None:
    header = ("measure", "result", "target", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)


async def run() -> list[tuple]:
    with vhost() as amqp_url, tempfile.TemporaryDirectory(prefix="mpr-bench-") as tmp:
        work = Path(tmp)
        clips = {}
        for name, seconds, size in (("long", 60, "1280x720"), ("short", 3, "320x240"),
                                    ("tiny", 1, "320x240")):  # fmt: skip
            local = make_clip(work / f"{name}.mp4", seconds, size)
            clips[name] = (local, f"bench/{name}.mp4", float(probe(local).duration))
        async with Bench(amqp_url, work) as bench:
            for local, key, _ in clips.values():
                bench.s3.upload_file(str(local), bench.bucket_in, key)
            return await measure(bench, clips)


def main() -> None:
    print("transcoder benchmark (local RabbitMQ, S3 server and FFmpeg; medians)")
    print_table(asyncio.run(run()))


if __name__ == "__main__":
    main()
