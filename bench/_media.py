"""Media pieces the benchmarks share: test clips, ffprobe, and MPR's FFmpeg command for a job.

Every executor a benchmark compares (bare FFmpeg, an MPR replica, the Celery baseline) runs
the command built here with the transcoder's own argument builder, so they differ only in
what surrounds FFmpeg.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from mpr_shared.contracts import JobKind, ProcessMedia, TrimMode
from mpr_transcoder.domain.ffmpeg_args import LOCAL_PROTOCOLS, Limits, Plan, build_plan
from mpr_transcoder.domain.media import MediaInfo


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=600,
    )


def make_clip(path: Path, seconds: int, size: str) -> Path:
    """An H.264/AAC test clip with a keyframe every 2 s."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


def probe_json(path: Path | str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def probe(path: Path | str) -> MediaInfo:
    return MediaInfo.from_ffprobe(probe_json(path))


def source_info(job: ProcessMedia, local: Path) -> MediaInfo:
    """What the replica knows of the source when it plans ``job``.

    A job that carries the catalog's duration and streams is planned from them, a copy trim
    from the duration alone (mpr_transcoder.application.job_core, ``JobCore.probe_source``);
    every other job from a probe of the source.
    """
    spec, streams = job.spec, job.source_streams
    if job.source_duration and streams is not None:
        return MediaInfo(job.source_duration, None, **streams.model_dump())
    copy_trim = spec.kind is JobKind.TRIM and (spec.mode or TrimMode.COPY) is TrimMode.COPY
    if copy_trim and job.source_duration:
        return MediaInfo(duration=job.source_duration, format_name=None)
    return probe(local)


def plan_for(job: ProcessMedia, info: MediaInfo, source: Path, workdir: Path) -> Plan:
    """The replica's FFmpeg command for ``job``, reading the local file ``source``."""
    return build_plan(
        job,
        job.spec.output_preset,
        info,
        target=str(source),
        protocols=LOCAL_PROTOCOLS,
        workdir=workdir,
        limits=Limits(),
    )


def run_timed(args: list[str]) -> float:
    """Run one FFmpeg command; its wall time in seconds, process start included. Its log is
    read from a pipe, as the replica reads it for the job's log tail."""
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900)
    return time.perf_counter() - started
