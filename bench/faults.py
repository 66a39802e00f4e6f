"""The fault suite (issue 10): faults injected into a running `make dev` stack, then counted.

    make faults                                   every scenario at full size
    FAULT_KILLS=5 FAULT_JOBS=40 make faults       smaller
    uv run python -m bench.faults kills broker s3 some scenarios, in this order

It starts what it breaks, beside whatever else runs on the machine: its own RabbitMQ node
(`rabbit-faults@localhost` on 127.0.0.1:5692, state under var/faults/), its own SeaweedFS
(`weed mini`, S3 on 127.0.0.1:9190), a database of its own on the local PostgreSQL (created
and dropped), and the four services through scripts/dev.sh (the supervisor of `make dev`) with
FAULT_TRANSCODERS (3) replicas. The machine's RabbitMQ, S3 server and databases are never
touched. Then, one after the other:

- kills: FAULT_KILLS (20) times, `kill -9` of a transcoder replica while its FFmpeg runs a
  job (a different job each time); the supervisor restarts it, another replica reruns the job;
- broker: FAULT_JOBS (200) short jobs submitted, and once a tenth of them completed the
  suite's RabbitMQ is stopped (`rabbitmqctl stop_app`) for FAULT_BROKER_DOWN_SECONDS (5)
  and started again (`start_app`: the same node, its durable queues and messages);
- s3: FAULT_S3_JOBS (12) jobs with outputs above the multipart threshold, and the moment a
  multipart upload is open, the S3 server is stopped for FAULT_S3_DOWN_SECONDS (11) and
  started again on the same data.

Jobs are followed on the notifier's SSE stream (/api/events), never by polling the gateway.
After each scenario it reads every job once from the gateway and the output bucket once, and
prints: jobs completed, failed, lost (not finished within the scenario's time), duplicated
(more than one JobCompleted, or more than one object under the job's output prefix), stray
objects (in the output bucket, claimed by no completed job) and the multipart uploads still
open in both buckets. Exit code 1 if anything was lost, duplicated, stray or open. Every loop
is bounded in count and time; whatever happens, the suite's RabbitMQ and S3 are started again
before it stops them for good, and the stack is stopped (logs stay in var/faults/).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
from botocore.config import Config
from httpx_sse import connect_sse

from bench._media import ffmpeg, make_clip
from tests.support.env import clean_environ

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "var" / "faults"


def _int(name: str, default: int, low: int, high: int) -> int:
    """A bounded count from the environment: the suite never runs unbounded."""
    value = int(os.environ.get(name) or default)
    if not low <= value <= high:
        raise SystemExit(f"{name} must be within {low}..{high}, got {value}")
    return value


KILLS = _int("FAULT_KILLS", 20, 1, 100)
JOBS = _int("FAULT_JOBS", 200, 1, 2000)
S3_JOBS = _int("FAULT_S3_JOBS", 12, 1, 100)
TRANSCODERS = _int("FAULT_TRANSCODERS", 3, 2, 8)
BROKER_DOWN = _int("FAULT_BROKER_DOWN_SECONDS", 5, 1, 120)
S3_DOWN = _int("FAULT_S3_DOWN_SECONDS", 11, 1, 120)

# The suite's own servers, away from the defaults of scripts/infra.sh and the tests.
RABBIT_NODE = "rabbit-faults@localhost"
RABBIT_PORT = 5692
RABBIT_DIST_PORT = 25692
S3_PORT = 9190
WEED_PORTS = {"master": 9433, "volume": 9440, "filer": 8988, "admin": 23746}
PG = "postgresql://postgres@127.0.0.1:5432"
S3_KEY, S3_SECRET = "minioadmin", "minioadmin"
BUCKET_IN, BUCKET_OUT = "mpr-media-in", "mpr-media-out"
API_KEY = f"faults-{uuid.uuid4().hex}"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
SSE_TYPES = "job.queued,job.started,job.completed,job.failed,job.cancelled"


def log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} faults | {text}", flush=True)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], seconds: float, every: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:g} s")
        time.sleep(every)


def as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", "--preserve-env", *command]


# ------------------------------------------------------------------ the suite's servers


class RabbitNode:
    """A RabbitMQ node of the suite's own: the system's installation, its own name and ports.

    It runs with the home of the `rabbitmq` user, so it reads the same Erlang cookie as the
    machine's node and `rabbitmqctl -n` reaches both alike.
    """

    def __init__(self, state: Path) -> None:
        self.state = state
        self.url = f"amqp://guest:guest@127.0.0.1:{RABBIT_PORT}/"
        self.app_stopped = False

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_root(["rabbitmqctl", "-q", "-n", RABBIT_NODE, *args]),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> None:
        if self.ctl("status", timeout=30).returncode == 0:  # left by a run that was killed
            self.shutdown()
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir(parents=True)
        (self.state / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{RABBIT_PORT}\n"
            # guest may log in over loopback only (the default); say so rather than rely on it.
            "loopback_users.guest = true\n"
        )
        (self.state / "enabled_plugins").write_text("[].\n")  # no management UI on :15672
        home = subprocess.run(
            ["getent", "passwd", "rabbitmq"], capture_output=True, text=True, check=True
        ).stdout.split(":")[5]
        env = {
            **os.environ,
            "HOME": home,
            "RABBITMQ_NODENAME": RABBIT_NODE,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(RABBIT_PORT),
            "RABBITMQ_DIST_PORT": str(RABBIT_DIST_PORT),
            "RABBITMQ_CONFIG_FILE": str(self.state / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.state / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.state / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.state / "log"),
            "RABBITMQ_PID_FILE": str(self.state / "rabbitmq.pid"),
        }
        log(f"starting RabbitMQ {RABBIT_NODE} on 127.0.0.1:{RABBIT_PORT}")
        subprocess.run(
            as_root(["/usr/lib/rabbitmq/bin/rabbitmq-server", "-detached"]),
            env=env,
            check=True,
            timeout=60,
        )
        wait_for("RabbitMQ node", lambda: self.ctl("status", timeout=30).returncode == 0, 90, 1)
        self.await_startup()
        # The same six hours scripts/infra.sh sets on the machine's node.
        self.ctl("eval", "application:set_env(rabbit, consumer_timeout, 21600000).")

    def await_startup(self) -> None:
        done = self.ctl("await_startup", "--timeout", "90", timeout=120)
        if done.returncode:
            raise RuntimeError(f"RabbitMQ {RABBIT_NODE} did not start: {done.stderr}")

    def stop_app(self) -> None:
        self.app_stopped = True
        done = self.ctl("stop_app")
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl stop_app failed: {done.stderr}")

    def start_app(self) -> None:
        done = self.ctl("start_app", timeout=120)
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl start_app failed: {done.stderr}")
        self.app_stopped = False

    def shutdown(self) -> None:
        done = self.ctl("shutdown", timeout=120)
        if done.returncode:
            log(f"rabbitmqctl shutdown: {done.stderr.strip()}")


class SeaweedS3:
    """`weed mini` on the suite's own ports and data directory (as scripts/infra.sh runs it)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.url = f"http://127.0.0.1:{S3_PORT}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    def ports(self) -> list[int]:
        return [p + extra for p in (S3_PORT, *WEED_PORTS.values()) for extra in (0, 10000)]

    def start(self, fresh: bool = False) -> None:
        self.stop_leftover()
        if fresh:
            shutil.rmtree(self.state, ignore_errors=True)
        busy = [p for p in self.ports() if port_open(p)]
        if busy:
            raise RuntimeError(f"ports {busy} are taken; the suite's weed mini needs them")
        (self.state / "data").mkdir(parents=True, exist_ok=True)
        (self.state / "config").mkdir(exist_ok=True)
        weed = subprocess.run(
            ["bash", "-c", "source scripts/install.sh && find_weed"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        command = [
            weed, "-logtostderr", f"-config_dir={self.state / 'config'}", "mini",
            f"-dir={self.state / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={S3_PORT}", f"-master.port={WEED_PORTS['master']}",
            f"-volume.port={WEED_PORTS['volume']}", f"-filer.port={WEED_PORTS['filer']}",
            f"-admin.port={WEED_PORTS['admin']}", f"-bucket={BUCKET_IN},{BUCKET_OUT}",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=256",
            "-s3.allowDeleteBucketNotEmpty=false",
        ]  # fmt: skip
        with (self.state / "weed.log").open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                env={**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.state / "weed.pid").write_text(str(self.proc.pid))
        wait_for("S3 server", self.answers, 60, 0.3)

    def stop_leftover(self) -> None:
        """The weed of a run that was killed before its cleanup (its pid file, if still weed)."""
        pidfile = self.state / "weed.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            if str(self.state) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGTERM)
                wait_for("the earlier weed gone", lambda: not Path(f"/proc/{pid}").exists(), 20)
        pidfile.unlink(missing_ok=True)

    def answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"weed exited ({self.proc.returncode}); see {self.state}/weed.log")
        try:
            self.client.head_bucket(Bucket=BUCKET_OUT)
            self.client.head_bucket(Bucket=BUCKET_IN)
        except Exception:
            return False
        return True

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        (self.state / "weed.pid").unlink(missing_ok=True)
        wait_for("weed ports closed", lambda: not any(map(port_open, self.ports())), 30)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def keys(self, bucket: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", ())]

    def open_uploads(self, bucket: str) -> list[str]:
        found, marker = [], {}
        for _ in range(100):  # 100 pages of 1,000 at most
            page = self.client.list_multipart_uploads(Bucket=bucket, **marker)
            found += [u["Key"] for u in page.get("Uploads", ())]
            if not page.get("IsTruncated"):
                break
            marker = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }
        return found


class Database:
    """A database of the suite's own on the local PostgreSQL."""

    def __init__(self) -> None:
        self.name = f"mpr_faults_{os.getpid()}"
        self.url = f"{PG}/{self.name}"

    def psql(self, sql: str) -> None:
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", f"{PG}/postgres", "-c", sql],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def create(self) -> None:
        self.psql(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        # scripts/infra.sh (run by dev.sh) also makes <name>_test beside it.
        for name in (self.name, f"{self.name}_test"):
            with contextlib.suppress(subprocess.SubprocessError):
                self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------ the stack and its events


class DevStack:
    """scripts/dev.sh (infra check, migrations, scripts/supervise.py) in a session of its own."""

    def __init__(self, env: dict[str, str], logfile: Path) -> None:
        self.env = env
        self.logfile = logfile
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    @property
    def notifier(self) -> str:
        return f"http://127.0.0.1:{self.env['NOTIFIER_PORT']}"

    def start(self) -> None:
        log(f"starting scripts/dev.sh with {TRANSCODERS} transcoders (log: {self.logfile})")
        with self.logfile.open("wb") as out:  # this run's log only, like the servers'
            self.proc = subprocess.Popen(
                ["bash", "scripts/dev.sh"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"dev.sh exited ({self.proc.returncode}); see {self.logfile}")
            try:
                return all(
                    httpx.get(f"{url}/api/ready", timeout=2).status_code == 200
                    for url in (self.gateway, self.notifier)
                )
            except httpx.HTTPError:
                return False

        wait_for("gateway and notifier ready", ready, 180, 0.5)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the supervisor: every service, then its group
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            log("the supervisor did not stop within 60 s; SIGKILL to its session")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Job:
    id: str
    scenario: str
    submitted: float
    started: list[str] = field(default_factory=list)  # worker of each JobStarted
    completions: dict[str, list[str]] = field(default_factory=dict)  # event id → output keys
    failure: str | None = None
    ended: float | None = None  # monotonic time the first terminal event arrived
    killed: bool = False

    @property
    def done(self) -> bool:
        return self.ended is not None


class Events:
    """The notifier's SSE stream, read on a thread; resumes with Last-Event-ID."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/api/events?types={SSE_TYPES}"
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Condition()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.last_id: str | None = None
        self.reconnects = 0
        self.thread = threading.Thread(target=self.run, name="sse", daemon=True)

    def start(self) -> None:
        self.thread.start()
        if not self.connected.wait(30):
            raise TimeoutError("no SSE connection to the notifier within 30 s")

    def stop(self) -> None:
        self.stopping.set()  # the reader ends at its next event or read timeout (daemon)
        self.thread.join(timeout=2)

    def track(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.id] = job

    def run(self) -> None:
        timeout = httpx.Timeout(5.0, read=30.0)  # the notifier pings every 15 s
        while not self.stopping.is_set():
            headers = {"Authorization": f"Bearer {API_KEY}"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                with (
                    httpx.Client(timeout=timeout) as client,
                    connect_sse(client, "GET", self.url, headers=headers) as source,
                ):
                    source.response.raise_for_status()
                    self.connected.set()
                    for sse in source.iter_sse():
                        self.handle(sse.event, sse.id, sse.data)
                        if self.stopping.is_set():
                            return
            except httpx.HTTPError:
                pass
            if not self.stopping.is_set():
                self.reconnects += 1
                time.sleep(0.5)

    def handle(self, event: str, event_id: str, data: str) -> None:
        if event_id:
            self.last_id = event_id
        if not data or not event.startswith("job."):
            return
        body = json.loads(data)
        with self.lock:
            job = self.jobs.get(str(body.get("job_id")))
            if job is None:
                return
            if event == "job.started":
                job.started.append(body["worker"])
            elif event == "job.completed":
                job.completions[event_id] = [o["key"] for o in body.get("outputs", ())]
            elif event in ("job.failed", "job.cancelled"):
                job.failure = body.get("reason", event)
            if event in ("job.completed", "job.failed", "job.cancelled") and job.ended is None:
                job.ended = time.monotonic()
            self.lock.notify_all()

    def wait(self, what: str, predicate: Callable[[], bool], seconds: float) -> bool:
        """Until ``predicate()`` holds (checked under the lock) or ``seconds`` pass."""
        with self.lock:
            if self.lock.wait_for(predicate, timeout=seconds):
                return True
        log(f"{what}: not within {seconds:g} s")
        return False


# ------------------------------------------------------------------ the suite


@dataclass
class Figures:
    scenario: str
    jobs: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    stray: int = 0
    open_in: int = 0
    open_out: int = 0
    sse_missed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def bad(self) -> bool:
        return bool(self.lost or self.duplicated or self.stray or self.open_in or self.open_out)

    def lines(self) -> list[str]:
        return [
            f"{self.scenario}: {self.jobs} jobs: completed {self.completed}, failed {self.failed}, "
            f"lost {self.lost}, duplicated {self.duplicated}; stray objects {self.stray}; "
            f"open multipart uploads: input bucket {self.open_in}, output bucket {self.open_out}"
            + ("  <-- FAULT" if self.bad else ""),
            *(f"    {note}" for note in self.notes),
        ]


class Suite:
    def __init__(self, stack: DevStack, s3: SeaweedS3, rabbit: RabbitNode, events: Events) -> None:
        self.stack, self.s3, self.rabbit, self.events = stack, s3, rabbit, events
        self.api = httpx.Client(
            base_url=stack.gateway, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )
        self.claimed: set[str] = set()  # output keys of every completed job so far
        self.sources: dict[str, str] = {}

    # -- set-up

    def upload_sources(self, work: Path) -> None:
        """Three clips: a few seconds of encoding, a short one, one above the multipart size."""
        work.mkdir(parents=True, exist_ok=True)
        clips = {
            "encode": make_clip(work / "encode.mp4", 12, "640x360"),
            "short": make_clip(work / "short.mp4", 3, "160x90"),
            "large": work / "large.mp4",
        }
        # Noise does not compress: ~30 MB, so the copy trims' outputs are multipart uploads.
        ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=8,noise=alls=60:allf=t",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=8",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "20", "-g", "50",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clips["large"]),
        )  # fmt: skip
        for name, path in clips.items():
            key = f"faults/{name}.mp4"
            self.s3.client.upload_file(str(path), BUCKET_IN, key)
            self.sources[name] = key
        scan = self.api.post("/api/assets/scan", json={"prefix": "faults/"})
        scan.raise_for_status()

        def probed() -> bool:
            items = self.api.get("/api/assets", params={"prefix": "faults/"}).json()["items"]
            states = {a["key"]: a["probe_status"] for a in items}
            if "failed" in states.values():
                raise RuntimeError(f"a source failed its probe: {items}")
            return len(states) == len(clips) and set(states.values()) == {"ok"}

        wait_for("sources probed", probed, 120, 0.5)
        log(f"sources registered: {', '.join(sorted(self.sources.values()))}")

    # -- jobs

    def submit(self, scenario: str, body: dict) -> Job:
        for attempt in range(5):
            answer = self.api.post("/api/jobs", json=body)
            if answer.status_code == 202:
                job = Job(answer.json()["id"], scenario, time.monotonic())
                self.events.track(job)
                return job
            if answer.status_code < 500 or attempt == 4:
                raise RuntimeError(f"POST /api/jobs {answer.status_code}: {answer.text}")
            time.sleep(1)
        raise AssertionError("unreachable")

    def wait_all(self, jobs: list[Job], seconds: float) -> None:
        self.events.wait(f"{len(jobs)} jobs finished", lambda: all(j.done for j in jobs), seconds)

    def check(self, name: str, jobs: list[Job], started: float) -> Figures:
        """Each job read once from the gateway, the buckets listed once: the figures."""
        figures = Figures(name, jobs=len(jobs))
        objects = self.s3.keys(BUCKET_OUT)
        failures: Counter[str] = Counter()
        for job in jobs:
            view = self.api.get(f"/api/jobs/{job.id}").json()
            status = view["status"]
            if status == "completed":
                figures.completed += 1
                self.claimed.update(o["key"] for o in view["outputs"])
                under = [k for k in objects if f"/{job.id}/" in k]
                if len(job.completions) > 1 or len(under) > 1:
                    figures.duplicated += 1
                    figures.notes.append(
                        f"duplicated {job.id}: {len(job.completions)} JobCompleted, objects {under}"
                    )
            elif status in TERMINAL:
                figures.failed += 1
                failures[f"{status}: {view.get('error')}"] += 1
            else:
                figures.lost += 1
                figures.notes.append(f"lost {job.id}: still {status} (workers {job.started})")
            if status in TERMINAL and not job.done:
                figures.sse_missed += 1
        stray = sorted(set(objects) - self.claimed)
        figures.stray = len(stray)
        if stray:
            figures.notes.append(f"stray objects: {stray[:5]}{' …' if len(stray) > 5 else ''}")
        open_in, open_out = self.s3.open_uploads(BUCKET_IN), self.s3.open_uploads(BUCKET_OUT)
        figures.open_in, figures.open_out = len(open_in), len(open_out)
        if open_in or open_out:
            figures.notes.append(f"open uploads: in {open_in[:5]}, out {open_out[:5]}")
        figures.notes += [f"failed ({n}): {reason}" for reason, n in failures.items()]
        times = sorted(j.ended - j.submitted for j in jobs if j.ended is not None)
        if times:
            figures.notes.append(
                f"submitted → finished on SSE: median {statistics.median(times):.1f} s, "
                f"max {times[-1]:.1f} s; scenario {time.monotonic() - started:.0f} s"
            )
        if figures.sse_missed:
            figures.notes.append(f"{figures.sse_missed} jobs ended without their event on SSE")
        return figures

    # -- scenarios

    def scenario_kills(self) -> Figures:
        """kill -9 of a replica while its FFmpeg runs a job, KILLS times, one job each."""
        started = time.monotonic()
        body = {"source_key": self.sources["encode"], "kind": "transcode", "preset": "h264-480p"}
        jobs: list[Job] = []
        killed: list[Job] = []
        budget = time.monotonic() + 120 + 60 * KILLS
        for round_ in range(KILLS):
            waiting = [j for j in jobs if not j.done and not j.killed and not j.started]
            for _ in range(TRANSCODERS + 1 - len(waiting)):
                if len(jobs) < 2 * KILLS + TRANSCODERS:
                    jobs.append(self.submit("kills", body))
            target = self.kill_target(jobs, min(120.0, budget - time.monotonic()))
            if target is None:
                log(f"kills: no job running under FFmpeg to kill in round {round_ + 1}; stopping")
                break
            job, pid = target
            os.kill(pid, signal.SIGKILL)
            job.killed = True
            killed.append(job)
            log(f"kills: {len(killed)}/{KILLS}: kill -9 {pid} (running job {job.id})")
            time.sleep(random.uniform(0.5, 2.0))
        self.wait_all(jobs, 180 + 20 * len(jobs))
        figures = self.check("kill -9 of transcoders mid-job", jobs, started)
        ok = sum(1 for j in killed if len(j.completions) == 1)
        figures.notes.insert(
            0, f"{len(killed)} replicas killed mid-job; {ok} of their jobs completed once"
        )
        return figures

    def kill_target(self, jobs: list[Job], seconds: float) -> tuple[Job, int] | None:
        """A job whose replica (its latest JobStarted) is alive and has FFmpeg running."""
        deadline = time.monotonic() + max(seconds, 1)
        while time.monotonic() < deadline:
            with self.events.lock:
                running = [(j, j.started[-1]) for j in jobs if j.started and not j.done]
            candidates = []
            for job, worker in running:
                if job.killed:
                    continue
                pid = worker_pid(worker)
                if pid and ffmpeg_under(pid):
                    candidates.append((job, pid))
            if candidates:
                return random.choice(candidates)
            time.sleep(0.2)
        return None

    def scenario_broker(self) -> Figures:
        """JOBS short jobs; RabbitMQ stopped and started again once a tenth completed."""
        started = time.monotonic()
        body = {"source_key": self.sources["short"], "kind": "trim", "start": 0, "end": 1}
        jobs = [self.submit("broker", body) for _ in range(JOBS)]
        log(f"broker: {JOBS} jobs submitted in {time.monotonic() - started:.1f} s")
        tenth = max(1, JOBS // 10)
        self.events.wait(
            "a tenth completed", lambda: sum(j.done for j in jobs) >= tenth, 120 + JOBS
        )
        in_flight = sum(1 for j in jobs if not j.done)
        try:
            log(f"broker: rabbitmqctl stop_app with {in_flight} jobs not finished")
            down = time.monotonic()
            self.rabbit.stop_app()
            time.sleep(BROKER_DOWN)
        finally:
            self.rabbit.start_app()
        back = time.monotonic()
        log(f"broker: start_app; down {back - down:.1f} s")
        self.wait_all(jobs, 300 + 2 * JOBS)
        figures = self.check("RabbitMQ stopped and started", jobs, started)
        after = [j.ended - back for j in jobs if j.ended is not None and j.ended > back]
        figures.notes.insert(
            0,
            f"RabbitMQ stopped {back - down:.1f} s with {in_flight} jobs not finished; "
            + (
                f"{len(after)} finished after start_app, the first {min(after):.1f} s after it"
                if after
                else "all finished before start_app"
            ),
        )
        return figures

    def scenario_s3(self) -> Figures:
        """S3_JOBS large copy trims; the S3 server stopped while a multipart upload is open."""
        started = time.monotonic()
        body = {"source_key": self.sources["large"], "kind": "trim", "start": 0, "end": 7}
        jobs = [self.submit("s3", body) for _ in range(S3_JOBS)]

        def uploading() -> bool:
            return bool(self.s3.open_uploads(BUCKET_OUT))

        try:
            wait_for("a multipart upload open", uploading, 120, 0.05)
            during = "during a multipart upload"
        except TimeoutError:
            during = "no multipart upload seen open within 120 s"
        open_before = len(self.s3.open_uploads(BUCKET_OUT))
        try:
            log(f"s3: stopping the S3 server ({during}; {open_before} open)")
            down = time.monotonic()
            self.s3.stop()
            time.sleep(max(0.0, S3_DOWN - (time.monotonic() - down)))
        finally:
            if not self.s3.running:
                self.s3.start()
        outage = time.monotonic() - down
        log(f"s3: answering again after {outage:.1f} s")
        self.wait_all(jobs, 300 + 30 * S3_JOBS)
        figures = self.check("S3 server down", jobs, started)
        figures.notes.insert(0, f"S3 down {outage:.1f} s, stopped {during}")
        return figures


def worker_pid(worker: str) -> int | None:
    """The pid in a replica's instance id (hostname-pid-random), if that process lives."""
    parts = worker.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    pid = int(parts[1])
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def ffmpeg_under(root: int) -> bool:
    """Whether an ffmpeg process descends from ``root`` (from /proc)."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                names[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
                parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    for pid, name in names.items():
        if name != "ffmpeg":
            continue
        seen = 0
        while pid > 1 and seen < 64:
            pid, seen = parent.get(pid, 0), seen + 1
            if pid == root:
                return True
    return False


def stack_env(rabbit: RabbitNode, s3: SeaweedS3, db: Database) -> dict[str, str]:
    """What `make dev` would see, pointed at the suite's servers; the shell's MPR variables out."""
    return clean_environ(
        AMQP_URL=rabbit.url,
        DATABASE_URL=db.url,
        S3_ENDPOINT_URL=s3.url,
        S3_BUCKET_IN=BUCKET_IN,
        S3_BUCKET_OUT=BUCKET_OUT,
        AWS_ACCESS_KEY_ID=S3_KEY,
        AWS_SECRET_ACCESS_KEY=S3_SECRET,
        MPR_API_KEYS=f"faults:{API_KEY}",
        GATEWAY_PORT=str(free_port()),
        NOTIFIER_PORT=str(free_port()),
        PORT=str(free_port_block()),
        TRANSCODERS=str(TRANSCODERS),
        TRANSCODER_WORK_DIR=str(STATE / "work"),
        # Set, even empty, so that a developer's .env (read by dev.sh and the services for what
        # the environment lacks) cannot add auto-jobs (stray outputs) or skip the migrations.
        AUTO_TRANSCODE_PRESET="",
        S3_PUBLIC_ENDPOINT_URL="",
        MPR_SKIP_MIGRATIONS="",
        PROCFILE=str(ROOT / "Procfile.dev"),
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )


def free_port_block() -> int:
    """A base for the supervisor's PORTs (base+100 catalog, +200.. transcoders) all free."""
    for base in range(15500, 30000, 1000):
        wanted = [base + 100 * line + replica for line in range(4) for replica in range(8)]
        if not any(map(port_open, wanted)):
            return base
    raise RuntimeError("no free block of ports for the supervisor")


@contextlib.contextmanager
def step(what: str, cleanup: Callable[[], None]) -> Iterator[None]:
    """Run the block; ``cleanup`` afterwards whatever happened, its own failure only logged."""
    try:
        yield
    finally:
        try:
            cleanup()
        except Exception as exc:
            log(f"cleanup of {what} failed: {type(exc).__name__}: {exc}")


def remove_scratch() -> None:
    for path in ("media", "work", "seaweedfs/data", "rabbitmq/mnesia"):
        shutil.rmtree(STATE / path, ignore_errors=True)


SCENARIOS = ("kills", "broker", "s3")


def main(argv: list[str]) -> int:
    chosen = argv or list(SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        print(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    # SIGTERM (a `timeout`, a CI runner) unwinds like Ctrl-C: every cleanup below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    STATE.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(STATE / "work", ignore_errors=True)
    rabbit, s3, db = RabbitNode(STATE / "rabbitmq"), SeaweedS3(STATE / "seaweedfs"), Database()
    results: list[Figures] = []
    failed = False
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.enter_context(step("scratch", remove_scratch))  # logs stay, data goes
        # Each cleanup is registered before its start, so a start that fails halfway is undone.
        stack.enter_context(step("RabbitMQ", rabbit.shutdown))
        stack.enter_context(step("RabbitMQ app", lambda: rabbit.app_stopped and rabbit.start_app()))
        rabbit.start()
        stack.enter_context(step("S3", s3.stop))
        s3.start(fresh=True)
        stack.enter_context(step("database", db.drop))
        db.create()
        dev = DevStack(stack_env(rabbit, s3, db), STATE / "dev.log")
        stack.enter_context(step("dev stack", dev.stop))
        dev.start()
        events = Events(dev.notifier)
        events.start()
        stack.enter_context(step("SSE", events.stop))
        suite = Suite(dev, s3, rabbit, events)
        suite.upload_sources(STATE / "media")
        for name in chosen:
            log(f"=== scenario {name}")
            try:
                figures = getattr(suite, f"scenario_{name}")()
            except Exception as exc:  # report it, run the next one, fail the suite
                failed = True
                figures = Figures(
                    name, notes=[f"did not run to the end: {type(exc).__name__}: {exc}"]
                )
            results.append(figures)
            for line in figures.lines():
                log(line)
        log(f"SSE reconnects: {events.reconnects}")
    print(f"\nFault suite ({time.monotonic() - started:.0f} s; {TRANSCODERS} transcoders)")
    for figures in results:
        print("\n".join(figures.lines()))
    bad = failed or any(f.bad for f in results)
    print("RESULT:", "FAULTS FOUND" if bad else "nothing lost, duplicated, stray or left open")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
