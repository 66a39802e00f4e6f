"""Short jobs: MPR against the Celery baseline and bare FFmpeg, interleaved in one run.

Run from the repository root against the local infrastructure (`make infra`):

    uv run python -m bench celery

For each job (a stream-copy trim of a 2 s range of a 5 s clip, and a JPEG thumbnail of the
same clip) it runs rounds of three, A B C A B C ..., so load that drifts on a shared machine
hits every executor alike, and prints medians:

- A, bare FFmpeg: the transcoder's FFmpeg command for the job on local files, alone;
- B, MPR end to end: ProcessMedia published → JobCompleted received by a consumer on
  mpr.events (one replica, `python -m mpr_transcoder`);
- C, the Celery baseline (bench/celery_baseline.py): task sent → result received over the
  RPC backend (one worker, `celery worker --concurrency 1`), same RabbitMQ and S3 server.

Overhead = end to end - bare FFmpeg of the same round (the median of the rounds' values).
Target (issue 12): MPR's overhead ≤ the baseline's in the same run; aim ≤ 30 ms.

On a shared machine wall times move with whatever else runs, so it also prints each side's
CPU time per job (the replica's or the worker's process tree, FFmpeg and ffprobe included,
from /proc), which moves much less, and the phase timings each executor reports.
BENCH_SHORT_ROUNDS (default 11) sets the rounds, BENCH_SHORT_SIZE the clip's frame size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench._media import make_clip, probe, source_info
from bench.bench_transcoder import ROOT, S3_KEY, S3_SECRET, S3_URL, Bench, print_table, vhost
from bench.celery_baseline import app, process_media
from mpr_shared.contracts import ProcessMedia

ROUNDS = int(os.environ.get("BENCH_SHORT_ROUNDS", "11"))
CLIP_SIZE = os.environ.get("BENCH_SHORT_SIZE", "1280x720")
CLIP_SECONDS = 5
WORKER_LIFETIME_SECONDS = int(os.environ.get("BENCH_CELERY_LIFETIME", "1800"))
AIM_MS = 30.0
SIDES = ("bare", "mpr", "celery")
JOBS = {
    "copy trim 1-3 s of a 5 s clip": {"kind": "trim", "start": 1.0, "end": 3.0},
    "thumbnail at 2 s of a 5 s clip": {"kind": "thumbnail", "at": 2.0},
}


class CeleryBaseline:
    """A real Celery worker process (bounded lifetime) and a client that times its tasks."""

    def __init__(self, broker_url: str, work: Path) -> None:
        self.broker_url = broker_url
        app.conf.broker_url = broker_url  # the client side; the worker reads its environment
        self.queue = f"mpr-bench-celery-{os.getpid()}"
        self.log = work / "celery-worker.log"
        # The RPC backend answers on a reply queue of the thread that sent the task.
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="celery-client")
        self.phases: dict = {}  # job id → the task's own step timings (ms)
        self.pid = 0  # the worker's process tree hangs below this one

    @contextlib.contextmanager
    def worker(self) -> Iterator[None]:
        """Run the worker under `timeout`, so it ends even if this process dies first."""
        env = {
            **os.environ,
            "BENCH_CELERY_BROKER_URL": self.broker_url,
            "BENCH_CELERY_QUEUE": self.queue,
            "S3_ENDPOINT_URL": S3_URL,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        }
        command = [
            "timeout", "--kill-after=10", str(WORKER_LIFETIME_SECONDS),
            sys.executable, "-m", "celery", "-A", "bench.celery_baseline", "worker",
            "--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING",
            "--hostname", f"{self.queue}@%h", "--queues", self.queue,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
        self.pid = proc.pid
        try:
            yield
        finally:
            proc.terminate()  # timeout passes SIGTERM on: Celery's warm shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.thread.shutdown()

    def _call(self, job: ProcessMedia, source: dict, timeout: float) -> tuple[float, dict]:
        started = time.perf_counter()
        result = process_media.apply_async(
            (job.model_dump(mode="json"), source), queue=self.queue
        ).get(timeout=timeout)
        return time.perf_counter() - started, result

    async def end_to_end(self, job: ProcessMedia, source: dict, timeout: float = 120) -> float:
        """Seconds from task sent to result received; raises if the task failed."""
        loop = asyncio.get_running_loop()
        elapsed, result = await loop.run_in_executor(self.thread, self._call, job, source, timeout)
        if result["key"] != job.output_key or result["size"] <= 0:
            raise RuntimeError(f"Celery task returned {result}")
        self.phases[job.job_id] = result["phases"]
        return elapsed


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its descendants, reaped children included."""
    parent, ticks = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                # Fields after the command's ")": state ppid ... utime stime cutime cstime.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parent[int(entry.name)] = int(fields[1])
                ticks[int(entry.name)] = sum(int(f) for f in fields[11:15])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, pp in parent.items() if pp == pid and p not in tree]
        tree.update(children)
        frontier += children
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Samples:
    """One job's measurements: wall seconds per round, CPU seconds summed over the rounds."""

    bare: list[float] = field(default_factory=list)
    mpr: list[float] = field(default_factory=list)
    celery: list[float] = field(default_factory=list)
    mpr_ids: list = field(default_factory=list)
    celery_ids: list = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIDES, 0.0))

    def overhead_ms(self, side: str) -> float:
        """Median over rounds of (end to end - bare FFmpeg of the same round), in ms."""
        values = getattr(self, side)
        return statistics.median(e - b for e, b in zip(values, self.bare, strict=True)) * 1000

    def cpu_ms(self, side: str) -> float:
        """Mean CPU time per job of that executor's processes (FFmpeg included), in ms."""
        return self.cpu[side] / len(self.bare) * 1000


async def run_rounds(bench: Bench, celery: CeleryBaseline, spec: dict, clip) -> Samples:
    local, key, seconds = clip
    samples = Samples()
    info = source_info(bench.command(key, seconds, **spec), local)
    source = asdict(info)
    # Warm-up: first-run costs (imports, connections, reply queues, page cache) are not the
    # steady state a user who sends thousands of jobs sees.
    for _ in range(2):
        await bench.end_to_end(bench.command(key, seconds, **spec))
        await celery.end_to_end(bench.command(key, seconds, **spec), source)
    replica = bench.replicas[0].pid
    for _ in range(ROUNDS):
        job = bench.command(key, seconds, **spec)
        with _cpu(samples, "bare", children_cpu_seconds):
            samples.bare.append(bench.bare(job, local, info))
        with _cpu(samples, "mpr", lambda: tree_cpu_seconds(replica)):
            samples.mpr.append(await bench.end_to_end(job))
        samples.mpr_ids.append(job.job_id)
        job = bench.command(key, seconds, **spec)
        with _cpu(samples, "celery", lambda: tree_cpu_seconds(celery.pid)):
            samples.celery.append(await celery.end_to_end(job, source))
        samples.celery_ids.append(job.job_id)
    return samples


@contextlib.contextmanager
def _cpu(samples: Samples, side: str, read) -> Iterator[None]:
    """Add the CPU seconds ``read`` gains around the block (read outside any timed span)."""
    before = read()
    yield
    samples.cpu[side] += read() - before


def median_phases(phases: dict, ids: list) -> dict[str, float]:
    names = phases[ids[0]].keys()
    return {name: statistics.median(phases[i][name] for i in ids) for name in names}


def outside_ffmpeg_ms(seconds: list[float], ids: list, phases: dict) -> float:
    """Median of (end to end - the executor's own FFmpeg time for that job), in ms."""
    pairs = zip(seconds, ids, strict=True)
    return statistics.median(e * 1000 - phases[i]["ffmpeg"] for e, i in pairs)


def rows_for(name: str, s: Samples, mpr_phases: dict, celery_phases: dict) -> list[tuple]:
    ms = {side: statistics.median(getattr(s, side)) * 1000 for side in SIDES}
    mpr_over, celery_over = s.overhead_ms("mpr"), s.overhead_ms("celery")
    ratio = mpr_over / celery_over if celery_over > 0 else float("inf")
    mpr_out = outside_ffmpeg_ms(s.mpr, s.mpr_ids, mpr_phases)
    celery_out = outside_ffmpeg_ms(s.celery, s.celery_ids, celery_phases)
    mp, cp = median_phases(mpr_phases, s.mpr_ids), median_phases(celery_phases, s.celery_ids)
    cpu = {side: s.cpu_ms(side) for side in SIDES}
    return [
        (name, "", "", ""),
        ("  bare FFmpeg", f"{ms['bare']:.0f} ms", "", ""),
        ("  MPR end to end", f"{ms['mpr']:.0f} ms; overhead +{mpr_over:.0f} ms", "", ""),
        ("  Celery end to end", f"{ms['celery']:.0f} ms; overhead +{celery_over:.0f} ms", "", ""),
        (
            "  overhead MPR ÷ Celery",
            f"{ratio:.2f} (+{mpr_over:.0f} vs +{celery_over:.0f} ms)",
            "≤ 1",
            "ok" if mpr_over <= celery_over else "MISS",
        ),
        ("  MPR overhead", f"+{mpr_over:.0f} ms", f"aim ≤ {AIM_MS:.0f} ms",
         "ok" if mpr_over <= AIM_MS else "MISS"),
        ("  end to end MPR ÷ Celery", f"{ms['mpr'] / ms['celery']:.2f}", "", ""),
        ("  outside FFmpeg (end to end - own FFmpeg)",
         f"MPR {mpr_out:.0f} ms vs Celery {celery_out:.0f} ms", "", ""),
        ("  CPU per job (processes, FFmpeg included)",
         f"bare {cpu['bare']:.0f} ms, MPR {cpu['mpr']:.0f} ms (+{cpu['mpr'] - cpu['bare']:.0f}), "
         f"Celery {cpu['celery']:.0f} ms (+{cpu['celery'] - cpu['bare']:.0f})", "", ""),
        ("  MPR replica phases (ms)", _fmt(mp), "", ""),
        ("  Celery task phases (ms)", _fmt(cp), "", ""),
    ]  # fmt: skip


def _fmt(phases: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}" for name, value in phases.items())


async def run() -> list[tuple]:
    with vhost() as amqp_url, tempfile.TemporaryDirectory(prefix="mpr-bench-") as tmp:
        work = Path(tmp)
        local = make_clip(work / "clip.mp4", CLIP_SECONDS, CLIP_SIZE)
        clip = (local, "bench/clip.mp4", float(probe(local).duration))
        celery = CeleryBaseline(amqp_url, work)
        async with Bench(amqp_url, work) as bench:
            bench.s3.upload_file(str(local), bench.bucket_in, clip[1])
            bench.start_replicas(1)
            rows = []
            with celery.worker():
                for name, spec in JOBS.items():
                    samples = await run_rounds(bench, celery, spec, clip)
                    rows += rows_for(name, samples, bench.phases(), celery.phases)
            return rows


def main() -> None:
    print(f"short jobs: bare FFmpeg vs MPR vs Celery ({ROUNDS} interleaved rounds; medians)")
    print(f"clip: {CLIP_SECONDS} s {CLIP_SIZE} H.264/AAC; load average before: {_loadavg()}")
    print_table(asyncio.run(run()))
    print(f"load average after: {_loadavg()} on {os.cpu_count()} cores")


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


if __name__ == "__main__":
    main()
