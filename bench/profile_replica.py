"""Where a short job's time goes in MPR: short jobs through one traced, profiled replica.

Run from the repository root against the local infrastructure (`make infra`):

    uv run python -m bench.profile_replica                  # 50 copy trims, py-spy attached
    uv run python -m bench.profile_replica thumbnail 30     # another job of bench_celery
    BENCH_PYSPY=0 uv run python -m bench.profile_replica    # timings only

Jobs run one at a time through a replica started as `python -m bench._traced_replica`, which
records every port call (jobs-row read, each event publish, S3 GET/PUT, FFmpeg, each probe)
on one clock with this process's send and receive times. It prints the median of each stretch
of the job's path from "ProcessMedia published" to "JobCompleted received" (with the calls that
run inside it, some side by side), and, when py-spy is
installed (the dev group has it), the replica's Python CPU time per job by library.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._media import make_clip, plan_for, probe, run_timed, source_info
from bench.bench_celery import CLIP_SECONDS, CLIP_SIZE, JOBS
from bench.bench_transcoder import Bench, print_table, vhost
from mpr_shared import storage
from mpr_shared.settings import CommonSettings
from mpr_transcoder.adapters.ffmpeg import _probe_in_process
from mpr_transcoder.domain.ffmpeg_args import LOCAL_PROTOCOLS

PYSPY_RATE = 250  # samples per second
OUT = Path(__file__).resolve().parents[1] / "var" / "bench"  # the trace and profile stay here
KINDS = {spec["kind"]: spec for spec in JOBS.values()}


async def traced_jobs(bench: Bench, spec: dict, clip, jobs: int) -> dict[str, tuple]:
    """Run ``jobs`` jobs one by one; job id → (sent, received) on the monotonic clock."""
    _, key, seconds = clip
    times = {}
    for _ in range(jobs):
        job = bench.command(key, seconds, **spec)
        await bench.record(job)
        sent = time.perf_counter()
        times[str(job.job_id)] = (sent, sent + await bench.end_to_end(job))
    return times


def read_trace(path: Path) -> dict[str, list[dict]]:
    calls = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        call = json.loads(line)
        calls[call["job"]].append(call)
    return calls


def job_path(calls: list[dict], sent: float, received: float) -> dict[str, float]:
    """One job's stretches in order (ms), each with the traced calls inside it; calls marked ∥
    overlap others, so only the stretches add up to the end-to-end time."""
    first = {}
    steps: dict[str, float] = collections.defaultdict(float)
    for call in calls:
        first.setdefault(call["step"], call)
        steps[call["step"]] += call["ms"]
    handler, core, ffmpeg = first["handler"], first["job core"], first["FFmpeg"]
    done = first["publish JobCompleted"]
    probes = [c for c in calls if c["step"] == "probe"]
    verify, upload = probes[-1], first["S3 upload"]
    path = {"delivery: published → handler starts": (handler["start"] - sent) * 1000}
    path["handler → job core"] = (core["start"] - handler["start"]) * 1000
    path["job core → FFmpeg starts"] = (ffmpeg["start"] - core["start"]) * 1000
    path["  S3 download"] = steps["S3 download"]
    path["  ∥ jobs row read"] = steps["jobs row read"]
    path["  ∥ publish JobStarted (to its confirm)"] = steps["publish JobStarted"]
    path["  probe of the source"] = probes[0]["ms"] if len(probes) > 1 else 0.0
    path["FFmpeg"] = ffmpeg["ms"]
    path["FFmpeg ends → job core returns"] = (_end(core) - _end(ffmpeg)) * 1000
    path["  verification ∥ upload"] = _span_ms(verify, upload)
    path["  of which the output's probe"] = verify["ms"]
    path["  of which S3 upload"] = upload["ms"]
    path["job core returns → JobCompleted published"] = (done["start"] - _end(core)) * 1000
    path["JobCompleted: publish → received by the client"] = (received - done["start"]) * 1000
    path["  (its publisher confirm took)"] = done["ms"]
    progress = [c for c in calls if c["step"] == "publish JobProgress"]
    path["JobProgress publishes (count)"] = len(progress)
    path["JobProgress confirmed after FFmpeg's end (ms)"] = max(
        [(_end(c) - _end(ffmpeg)) * 1000 for c in progress] + [0.0]
    )
    path["end to end"] = (received - sent) * 1000
    path["end to end - FFmpeg"] = path["end to end"] - steps["FFmpeg"]
    return path


def _end(call: dict) -> float:
    return call["start"] + call["ms"] / 1000


def _span_ms(*calls: dict) -> float:
    """Wall time from the first call's start to the last one's end (ms)."""
    return (max(_end(c) for c in calls) - min(c["start"] for c in calls)) * 1000


def path_rows(calls: dict[str, list[dict]], times: dict[str, tuple]) -> list[tuple]:
    paths = [job_path(calls[job], *times[job]) for job in times]
    rows = []
    for name in paths[0]:
        values = [p[name] for p in paths]
        median = statistics.median(values)
        spread = f"p10 {_quantile(values, 0.1):.1f}, p90 {_quantile(values, 0.9):.1f}"
        rows.append((name, f"{median:.1f}", spread, ""))
    return rows


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# Leaf-most frame whose file matches decides the library a CPU sample is charged to. py-spy
# prints paths relative to their site-packages or stdlib directory ("botocore/client.py").
LIBRARIES = [
    ("pydantic", r"\((pydantic|pydantic_core)/"),
    ("botocore/boto3/s3transfer/urllib3", r"\((botocore|boto3|s3transfer|urllib3)/"),
    ("SQLAlchemy/aiosqlite", r"\((sqlalchemy|aiosqlite|sqlite3)/"),
    ("aio-pika/aiormq/pamqp", r"\((aio_pika|aiormq|pamqp)/"),
    ("FastStream", r"\(faststream/"),
    ("logging", r"\(logging/"),
    ("http.client/ssl/socket", r"\((http/client|ssl|socket)\.py"),
    ("asyncio/subprocess/threads", r"\((asyncio/|subprocess\.py|concurrent/|threading\.py)"),
    ("tenacity", r"\(tenacity/"),
    ("MPR", r"\(mpr_\w+/"),
    ("bench trace", r"\(bench/"),
]
# Leaf frames that wait rather than run (py-spy under load does not always mark them idle).
WAITING = re.compile(
    r"^(EpollSelector\.select|_worker \(concurrent/futures/thread\.py:81\)|"
    r"(Condition|Event)\.wait)"
)


def pyspy_rows(raw: Path, jobs: int) -> list[tuple]:
    """CPU time of the replica's Python per job (ms), by the library of the leaf-most frame."""
    per_library: collections.Counter[str] = collections.Counter()
    per_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        if WAITING.match(frames[-1]):
            continue
        total += samples
        per_library[_library(frames)] += samples
        for function in {f.split(" (")[0] for f in frames if "(mpr_" in f}:
            per_function[function] += samples
    ms = 1000 / PYSPY_RATE / jobs
    rows = [("replica CPU, all Python", f"{total * ms:.1f}", "ms per job", "")]
    rows += [(f"  {lib}", f"{n * ms:.1f}", "", "") for lib, n in per_library.most_common(10)]
    rows += [
        (f"  in MPR's {fn}()", f"{n * ms:.1f}", "inclusive", "")
        for fn, n in per_function.most_common(10)
    ]
    return rows


def _library(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in LIBRARIES:
            if re.search(pattern, frame):
                return name
    return "other (stdlib, interpreter)"


def _median_ms(fn, runs: int = 15) -> float:
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        values.append((time.perf_counter() - started) * 1000)
    return statistics.median(values)


def _in_process_probe(path: Path):
    """The replica's own in-process probe (PyAV, FFmpeg's libraries in the process)."""

    def probe_once() -> None:
        data = _probe_in_process(str(path), LOCAL_PROTOCOLS, None)
        assert data["format"]["duration"] and data["streams"], "read no duration or streams"

    return probe_once


def _paths_out(args: list[str]) -> list[str]:
    return ["<path>" if arg.startswith("/") else arg for arg in args]


def alternatives_rows(bench: Bench, clip, spec: dict, trace: Path) -> list[tuple]:
    """What each replaceable step costs, and what its replacement would (medians, ms)."""
    local, key, seconds = clip
    job = bench.command(key, seconds, **spec)
    workdir = Path(tempfile.mkdtemp(dir=bench.work))
    plan = plan_for(job, source_info(job, local), local, workdir)
    run_timed(plan.args)
    output = plan.outputs[0].path
    s3, bucket = storage.get_s3_client(CommonSettings(**bench.env)), bench.bucket_in
    probe_args = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format"]
    traced = next(c["args"] for calls in read_trace(trace).values() for c in calls if "args" in c)
    same = _paths_out(traced) == _paths_out(plan.args)
    rows = [
        ("the replica ran the FFmpeg command the benchmarks run", "yes" if same else "NO", "", ""),
        ("alternatives (ms, medians of 15)", "", "", ""),
        ("  ffprobe of the output (the verification before issue 12)",
         _ms(_run(*probe_args, "-show_streams", str(output))), "", ""),
        ("  ffprobe -version (process start, 200+ libraries)", _ms(_run("ffprobe", "-version")),
         "", ""),
        ("  the same output read in-process (PyAV, as verified now)",
         _ms(_in_process_probe(output)), "", ""),
        ("  S3 HEAD", _ms(lambda: s3.head_object(Bucket=bucket, Key=key)), "", ""),
        ("  S3 download_file (HEAD + GET, transfer threads)",
         _ms(lambda: storage.download_file(key, workdir / "a", bucket, client=s3)), "", ""),
        ("  S3 get_object, streamed to a file", _ms(lambda: _get(s3, bucket, key, workdir / "b")),
         "", ""),
        ("  S3 upload_file (transfer threads)",
         _ms(lambda: storage.upload_file(output, "alt/a", bucket, client=s3)), "", ""),
        ("  S3 put_object", _ms(lambda: _put(s3, bucket, "alt/b", output)), "", ""),
    ]  # fmt: skip
    shutil.rmtree(workdir)
    return rows


def _ms(fn) -> str:
    return f"{_median_ms(fn):.1f}"


def _run(*args: str):
    return lambda: subprocess.run(args, check=True, capture_output=True)


def _get(s3, bucket: str, key: str, dest: Path) -> None:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with dest.open("wb") as out:
        for chunk in body.iter_chunks(1 << 20):
            out.write(chunk)


def _put(s3, bucket: str, key: str, path: Path) -> None:
    with path.open("rb") as body:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def start_pyspy(pid: int, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy")
    if not spy or os.environ.get("BENCH_PYSPY", "1") == "0":
        return None
    command = [spy, "record", "--pid", str(pid), "--rate", str(PYSPY_RATE), "--format", "raw"]
    return subprocess.Popen(
        [*command, "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_pyspy(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    proc.wait(timeout=60)


async def run(kind: str, jobs: int) -> list[tuple]:
    with vhost() as amqp_url, tempfile.TemporaryDirectory(prefix="mpr-bench-") as tmp:
        work = Path(tmp)
        local = make_clip(work / "clip.mp4", CLIP_SECONDS, CLIP_SIZE)
        clip = (local, "bench/clip.mp4", float(probe(local).duration))
        OUT.mkdir(parents=True, exist_ok=True)
        trace, raw = OUT / f"trace-{kind}.jsonl", OUT / f"pyspy-{kind}.txt"
        trace.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)
        async with Bench(amqp_url, work) as bench:
            bench.s3.upload_file(str(local), bench.bucket_in, clip[1])
            bench.start_replicas(1, module="bench._traced_replica", BENCH_TRACE_FILE=str(trace))
            await traced_jobs(bench, KINDS[kind], clip, 3)  # warm-up
            spy = start_pyspy(bench.replicas[0].pid, raw)
            times = await traced_jobs(bench, KINDS[kind], clip, jobs)
            if spy:
                stop_pyspy(spy)
            bench.stop_replicas()
            rows = path_rows(read_trace(trace), times)
            if spy and raw.exists():
                rows += pyspy_rows(raw, jobs)
            return rows + alternatives_rows(bench, clip, KINDS[kind], trace)


def main(argv: list[str]) -> None:
    kind = argv[0] if argv else "trim"
    jobs = int(argv[1]) if len(argv) > 1 else 50
    print(
        f"MPR short-job profile: {jobs} x {kind} of a {CLIP_SECONDS} s {CLIP_SIZE} clip, one by one"
    )
    print_table(asyncio.run(run(kind, jobs)))


if __name__ == "__main__":
    main(sys.argv[1:])
