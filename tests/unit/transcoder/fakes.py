"""Fakes for the transcoder's ports (storage, FFmpeg runner, publisher, jobs table, delivery).

Each fake is checked against its Protocol by mypy (the assignments at the end of this file;
`make lint` checks this file) and acts on every argument it is given, as the real adapter
would: a URL it was not allowed to open, a missing object, a stop signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

from mpr_shared.contracts import Event, JobSpec, ProcessMedia
from mpr_transcoder.application.ports import (
    FFprobeFailed,
    JobRow,
    ProgressCallback,
    RunResult,
    SourceMissing,
    SourceTooLarge,
)
from mpr_transcoder.domain.errors import TransientError
from mpr_transcoder.domain.progress import ProgressSample

if TYPE_CHECKING:
    from mpr_transcoder.application.ports import (
        Delivery,
        EventPublisher,
        FFmpegRunner,
        JobMetrics,
        JobRows,
        Redelivery,
        Storage,
    )

MP4_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2"


def probe_data(
    *,
    duration: float = 10.0,
    video: str | None = "h264",
    width: int = 1280,
    height: int = 720,
    audio: str | None = "aac",
    fmt: str = MP4_FORMATS,
) -> dict[str, Any]:
    streams: list[dict[str, Any]] = []
    if video:
        streams.append(
            {"codec_type": "video", "codec_name": video, "width": width, "height": height}
        )
    if audio:
        streams.append({"codec_type": "audio", "codec_name": audio})
    return {"format": {"duration": str(duration), "format_name": fmt}, "streams": streams}


def make_job(kind: str = "transcode", output_key: str | None = None, **spec: Any) -> ProcessMedia:
    job_id = uuid4()
    if kind == "transcode":
        spec.setdefault("preset", "h264-480p")
    default_key = f"clips/a/{job_id}/" + ("" if kind == "hls" else f"{kind}.mp4")
    return ProcessMedia(
        job_id=job_id,
        correlation_id=str(job_id),
        source_bucket="in",
        source_key="clips/a.mp4",
        spec=JobSpec(kind=kind, **spec),
        output_bucket="out",
        output_key=output_key or default_key,
    )


class FakeStorage:
    """An in-memory bucket store; `fail` makes the named operation raise TransientError."""

    def __init__(self, objects: dict[tuple[str, str], bytes] | None = None) -> None:
        self.objects = dict(
            {("in", "clips/a.mp4"): b"source-bytes"} if objects is None else objects
        )
        self.fail: set[str] = set()
        self.downloads: list[Path] = []

    def _check(self, op: str) -> None:
        if op in self.fail:
            raise TransientError(f"S3 {op} failed: simulated")

    def _get(self, bucket: str, key: str) -> bytes:
        if (bucket, key) not in self.objects:
            raise SourceMissing(key)
        return self.objects[bucket, key]

    async def size(self, bucket: str, key: str) -> int:
        self._check("size")
        return len(self._get(bucket, key))

    async def download(self, bucket: str, key: str, dest: Path, *, max_bytes: int) -> int:
        self._check("download")
        data = self._get(bucket, key)
        if len(data) > max_bytes:
            raise SourceTooLarge(len(data))
        dest.write_bytes(data)
        self.downloads.append(dest)
        return len(data)

    async def presigned_url(self, bucket: str, key: str, expires_in: int) -> str:
        self._get(bucket, key)
        query = urlencode({"X-Amz-Expires": expires_in, "X-Amz-Signature": "x"})
        return f"http://s3.local/{bucket}/{key}?{query}"

    async def upload(self, path: Path, bucket: str, key: str) -> int:
        self._check("upload")
        data = path.read_bytes()
        self.objects[bucket, key] = data
        return len(data)

    async def list_keys(self, bucket: str, prefix: str) -> list[str]:
        self._check("list")
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))

    async def delete(self, bucket: str, keys: list[str]) -> None:
        self._check("delete")
        for key in keys:
            self.objects.pop((bucket, key), None)

    def keys(self, bucket: str = "out") -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket)


def output_paths(args: list[str]) -> list[Path]:
    """The files an FFmpeg command writes (the argument after the last stream option)."""
    return [Path(a) for a in args if "/output." in a or a.endswith("%v/index.m3u8")]


def _scheme_allowed(target: str, protocols: str) -> bool:
    scheme = target.split("://", 1)[0] if "://" in target else "file"
    return scheme in protocols.split(",")


class FakeRunner:
    """Writes the outputs a command names, reports progress, and answers probes."""

    def __init__(
        self,
        source: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
        *,
        returncode: int = 0,
        error_lines: list[str] | None = None,
        log_tail: list[str] | None = None,
        samples: list[ProgressSample] | None = None,
        block: bool = False,
        renditions: tuple[str, ...] = (),
    ) -> None:
        self.source = source or probe_data()
        self.output = output or probe_data(height=480, width=854)
        self.returncode = returncode
        self.error_lines = error_lines or []
        self.log_tail = log_tail or []
        self.samples = (
            samples
            if samples is not None
            else [
                ProgressSample(5.0, 30.0, 2.0, False),
                ProgressSample(10.0, 30.0, 2.0, True),
            ]
        )
        self.block = block
        self.renditions = renditions
        self.runs: list[list[str]] = []
        self.probes: list[str] = []
        self.probe_formats: list[str | None] = []
        self.started = asyncio.Event()
        self.killed = False
        self.probe_hook: Callable[[str], dict[str, Any]] | None = None

    async def run(
        self, args: list[str], *, on_progress: ProgressCallback, stop: asyncio.Event
    ) -> RunResult:
        self.runs.append(list(args))
        for path in output_paths(args):
            self._write(path)
        self.started.set()
        if self.block:
            await stop.wait()
        if stop.is_set():
            self.killed = True
            return RunResult(None, [], stopped=True)
        for sample in self.samples:
            await on_progress(sample)
        return RunResult(self.returncode, self.error_lines, log_tail=self.log_tail)

    def _write(self, path: Path) -> None:
        if "%v" not in str(path):
            path.write_bytes(b"partial")
            return
        root = path.parent.parent
        for name in self.renditions:
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / "index.m3u8").write_text("#EXTM3U\nsegment_00000.ts\n")
            (root / name / "segment_00000.ts").write_bytes(b"ts")
        master = "".join(f"#EXT-X-STREAM-INF:X\n{n}/index.m3u8\n" for n in self.renditions)
        (root / "master.m3u8").write_text("#EXTM3U\n" + master)

    async def probe(
        self, target: str, *, protocols: str, formats: str | None = None
    ) -> dict[str, Any]:
        self.probes.append(target)
        self.probe_formats.append(formats)
        if not _scheme_allowed(target, protocols):
            raise FFprobeFailed("ffprobe exited with 1", [f"{target}: Protocol not on whitelist"])
        data = self._probed(target)
        names = set(str(data.get("format", {}).get("format_name", "")).split(","))
        if formats is not None and not names & set(formats.split(",")):
            raise FFprobeFailed("ffprobe exited with 1", [f"{target}: Format not on whitelist"])
        return data

    def _probed(self, target: str) -> dict[str, Any]:
        if self.probe_hook:
            return self.probe_hook(target)
        if "/source" in target or target.startswith("http"):
            return self.source
        return self.output


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail = False

    async def publish(self, event: Event) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.events.append(event)

    def types(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class FakeMetrics:
    def __init__(self) -> None:
        self.speeds: list[tuple[str, str, float]] = []

    def ffmpeg_speed(self, kind: str, preset: str, speed: float) -> None:
        self.speeds.append((kind, preset, speed))


class FakeJobRows:
    def __init__(self, rows: dict[UUID, JobRow] | None = None) -> None:
        self.rows = rows or {}
        self.broken = False

    async def get(self, job_id: UUID) -> JobRow | None:
        if self.broken:
            raise TransientError("database down")
        return self.rows.get(job_id)


class FakeDelivery:
    def __init__(self, deliveries: int = 1, redelivered: bool = False) -> None:
        self._deliveries = deliveries
        self._redelivered = redelivered
        self.is_lost = False

    @property
    def deliveries(self) -> int:
        return self._deliveries

    @property
    def redelivered(self) -> bool:
        return self._redelivered

    def lost(self) -> bool:
        return self.is_lost


class FakeRedelivery:
    def __init__(self) -> None:
        self.retried: list[tuple[UUID, int]] = []
        self.dead: list[tuple[UUID, str, int]] = []
        self.causes: list[str] = []

    async def republish(self, job: ProcessMedia, deliveries: int) -> None:
        self.retried.append((job.job_id, deliveries))

    async def dead_letter(
        self, job: ProcessMedia, reason: str, deliveries: int, cause: BaseException
    ) -> None:
        self.dead.append((job.job_id, reason, deliveries))
        self.causes.append(type(cause).__name__)


if TYPE_CHECKING:  # mypy checks each fake against its port (`make lint`)
    _storage: Storage = FakeStorage()
    _runner: FFmpegRunner = FakeRunner()
    _publisher: EventPublisher = FakePublisher()
    _metrics: JobMetrics = FakeMetrics()
    _rows: JobRows = FakeJobRows()
    _delivery: Delivery = FakeDelivery()
    _redelivery: Redelivery = FakeRedelivery()
