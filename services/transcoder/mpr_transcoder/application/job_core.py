"""The job core: one media job from source object to verified, uploaded outputs.

It knows nothing of RabbitMQ or Lambda: the consumer (``worker.py``) and the Lambda handler
(``lambda_handler.py``) both call :meth:`JobCore.run` with their own ports. It returns the
job's final event (JobCompleted, JobFailed or JobCancelled) and raises ``TransientError``
(retry later) or ``Interrupted`` (shutdown or lost delivery: hand the job back).

Input: the source is downloaded to local disk by default (``INPUT_MODE=download``); FFmpeg
can instead read a presigned URL (``INPUT_MODE=url``). bench/bench_transcoder.py measures both
in the same run (numbers in services/transcoder/README.md): a 60 s 720p transcode was up to
~45 % slower reading the URL (FFmpeg's HTTP reads against a parallel ranged download plus
local reads), short copy trims were within noise, and local files keep mid-job network errors
out of FFmpeg, so download is the default; ``url`` suits sources larger than the scratch disk.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mpr_shared.contracts import (
    Event,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobKind,
    JobProgress,
    JobStarted,
    OutputFile,
    ProcessMedia,
    TrimMode,
)
from mpr_transcoder.commands import (
    HLS_MASTER,
    HLS_PLAYLIST,
    LOCAL_PROTOCOLS,
    SOURCE_FORMATS,
    URL_PROTOCOLS,
    Expectation,
    Limits,
    Plan,
    PlannedOutput,
    build_plan,
    source_extension,
)
from mpr_transcoder.errors import BadInput, Interrupted, StopReason, TransientError
from mpr_transcoder.media import MediaInfo
from mpr_transcoder.ports import EventPublisher, FFmpegRunner, ProbeFailed, SourceMissing, Storage
from mpr_transcoder.progress import ProgressSample, ProgressThrottle
from mpr_transcoder.settings import InputMode

log = logging.getLogger(__name__)

# FFmpeg errors that mean the network failed while reading a presigned URL: worth a retry.
_NETWORK_ERROR = re.compile(
    r"connection (refused|reset|timed out)|timed out|network is unreachable|"
    r"server returned 5\d\d|i/o error|end of file",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """The knobs of the job core (built from TranscoderSettings)."""

    scratch: Path
    limits: Limits = field(default_factory=Limits)
    input_mode: InputMode = InputMode.DOWNLOAD
    max_input_bytes: int = 20 * 1024**3
    max_duration_seconds: float = 6 * 3600.0
    ffmpeg_binary: str = "ffmpeg"
    url_expiry_seconds: int = 6 * 3600


class StopSignal:
    """Set once from outside (cancel, timeout, shutdown, lost delivery); the first reason wins."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: StopReason | None = None
        self.detail = ""

    def stop(self, reason: StopReason, detail: str = "") -> None:
        if self.reason is None:
            self.reason, self.detail = reason, detail
            self.event.set()

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def check(self) -> None:
        """Raise Interrupted when the job has been told to stop."""
        if self.reason is not None:
            raise Interrupted(self.reason, self.detail)


@dataclass(slots=True)
class _Uploaded:
    key: str
    size: int
    probe: dict | None = None


class JobCore:
    """Runs one job; one instance serves every job of a replica (or of a Lambda call)."""

    def __init__(
        self,
        *,
        config: CoreConfig,
        storage: Storage,
        runner: FFmpegRunner,
        publisher: EventPublisher,
        worker: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.storage = storage
        self.runner = runner
        self.publisher = publisher
        self.worker = worker
        self.clock = clock

    async def run(self, job: ProcessMedia, stop: StopSignal | None = None) -> Event:
        """Run ``job`` and return its final event; temp files are gone when this returns."""
        stop = stop or StopSignal()
        started = self.clock()
        workdir = self.config.scratch / f"job-{secrets.token_hex(8)}"
        workdir.mkdir(parents=True, exist_ok=False)
        try:
            await self.publisher.publish(JobStarted(**self._envelope(job), worker=self.worker))
            outputs = await self._run(job, workdir, stop)
            return JobCompleted(
                **self._envelope(job),
                outputs=outputs,
                elapsed_seconds=round(self.clock() - started, 3),
            )
        except BadInput as exc:
            log.warning("job %s failed: %s %s", job.job_id, exc.reason, exc.error_lines)
            await self._remove_outputs(job)
            return JobFailed(**self._envelope(job), reason=exc.reason, error_lines=exc.error_lines)
        except Interrupted as exc:
            if exc.reason is StopReason.CANCEL:
                await self._remove_outputs(job)
                return JobCancelled(**self._envelope(job), reason=exc.detail or "cancelled")
            if exc.reason is StopReason.TIMEOUT:
                await self._remove_outputs(job)
                return JobFailed(**self._envelope(job), reason=exc.detail or "job timed out")
            raise  # shutdown or lost delivery: the job goes back to the queue as it was
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    def _envelope(self, job: ProcessMedia) -> dict:
        return job.caused(job_id=job.job_id, attempt=job.attempt)

    async def _run(self, job: ProcessMedia, workdir: Path, stop: StopSignal) -> list[OutputFile]:
        phases: dict[str, float] = {}
        mark = self.clock()

        def lap(name: str) -> None:
            nonlocal mark
            now = self.clock()
            phases[name] = round((now - mark) * 1000)
            mark = now

        preset = job.spec.output_preset
        target, protocols = await self._open_source(job, workdir)
        lap("source")
        stop.check()
        source = await self._probe_source(job, target, protocols)
        lap("probe")
        stop.check()
        plan = build_plan(
            job,
            preset,
            source,
            target=target,
            protocols=protocols,
            workdir=workdir,
            limits=self.config.limits,
            binary=self.config.ffmpeg_binary,
        )
        log.debug("job %s: ffmpeg %s", job.job_id, plan.args)
        await self._ffmpeg(job, plan, stop)
        lap("ffmpeg")
        stop.check()
        uploaded = await self._verify_and_upload(job, plan)
        lap("verify_upload")
        stop.check()
        log.info("job %s: outputs ready %s; phases (ms) %s", job.job_id, plan.notes, phases)
        return [
            OutputFile(key=u.key, bucket=job.output_bucket, size_bytes=u.size, probe=u.probe)
            for u in uploaded
        ]

    async def _open_source(self, job: ProcessMedia, workdir: Path) -> tuple[str, str]:
        try:
            size = await self.storage.size(job.source_bucket, job.source_key)
        except SourceMissing:
            raise BadInput(
                f"source s3://{job.source_bucket}/{job.source_key} does not exist"
            ) from None
        if size > self.config.max_input_bytes:
            raise BadInput(
                f"source is {size} bytes; the limit (MAX_INPUT_BYTES) is "
                f"{self.config.max_input_bytes}"
            )
        if self.config.input_mode is InputMode.URL:
            url = await self.storage.presigned_url(
                job.source_bucket, job.source_key, self.config.url_expiry_seconds
            )
            return url, URL_PROTOCOLS
        # A generated name: keys never become local paths.
        local = workdir / f"source{source_extension(job)}"
        try:
            await self.storage.download(job.source_bucket, job.source_key, local)
        except SourceMissing:  # deleted between the HEAD above and this GET
            raise BadInput(
                f"source s3://{job.source_bucket}/{job.source_key} does not exist"
            ) from None
        return str(local), LOCAL_PROTOCOLS

    async def _probe_source(self, job: ProcessMedia, target: str, protocols: str) -> MediaInfo:
        spec = job.spec
        if (
            spec.kind is JobKind.TRIM
            and (spec.mode or TrimMode.COPY) is TrimMode.COPY
            and job.source_duration
        ):
            # A stream copy needs only the duration, which the catalog already probed;
            # skipping a second ffprobe keeps short trims fast. The output is still verified.
            source = MediaInfo(duration=job.source_duration, format_name=None)
        else:
            try:
                data = await self.runner.probe(target, protocols=protocols, formats=SOURCE_FORMATS)
                source = MediaInfo.from_ffprobe(data)
            except ProbeFailed as exc:
                if protocols == URL_PROTOCOLS and _NETWORK_ERROR.search(" ".join(exc.error_lines)):
                    raise TransientError(f"could not read the source URL: {exc}") from None
                last = f": {exc.error_lines[-1]}" if exc.error_lines else ""
                raise BadInput(
                    f"the source is not a decodable media file{last}", exc.error_lines
                ) from None
        if source.duration is not None and source.duration > self.config.max_duration_seconds:
            raise BadInput(
                f"source lasts {source.duration:.0f}s; the limit (MAX_DURATION_SECONDS) is "
                f"{self.config.max_duration_seconds:.0f}s"
            )
        return source

    async def _ffmpeg(self, job: ProcessMedia, plan: Plan, stop: StopSignal) -> None:
        throttle = ProgressThrottle(plan.expected_seconds, self.clock)

        async def on_progress(sample: ProgressSample) -> None:
            update = throttle.update(sample)
            if update is None:
                return
            await self.publisher.publish(
                JobProgress(
                    **self._envelope(job),
                    percent=update.percent,
                    out_time_seconds=update.out_time_seconds,
                    fps=update.fps,
                    speed=update.speed,
                    eta_seconds=update.eta_seconds,
                )
            )

        result = await self.runner.run(plan.args, on_progress=on_progress, stop=stop.event)
        stop.check()
        if result.ok:
            return
        lines = result.error_lines
        if self.config.input_mode is InputMode.URL and _NETWORK_ERROR.search(" ".join(lines)):
            raise TransientError("FFmpeg lost the source URL: " + "; ".join(lines[-2:]))
        last = lines[-1] if lines else "no error output"
        raise BadInput(f"FFmpeg failed (exit code {result.returncode}): {last}", lines)

    async def _verify_and_upload(self, job: ProcessMedia, plan: Plan) -> list[_Uploaded]:
        """Verify and upload side by side (verification is read-only); a failed check
        removes what was uploaded before the job is reported failed."""
        outputs = self._hls_outputs(plan) if plan.hls else list(plan.outputs)
        missing = [o.path.name for o in outputs if not o.path.is_file()]
        if missing or not outputs:
            raise BadInput(f"FFmpeg wrote no output ({', '.join(missing) or 'nothing'})")
        checks = [self._verify(o.path, o.expect) for o in outputs if o.verify]
        if plan.hls:
            checks.append(self._verify_master(plan))
        results = await asyncio.gather(
            asyncio.gather(*checks), self._upload_all(job, outputs), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        probes, uploaded = results
        verified = [o for o in outputs if o.verify]
        # probes ends with the master check for HLS, which has no output of its own.
        by_key = {
            o.key: info.summary() for o, info in zip(verified, probes[: len(verified)], strict=True)
        }
        for item in uploaded:
            item.probe = by_key.get(item.key)
        if plan.hls:
            await self._delete_stale(job, {u.key for u in uploaded})
        return uploaded

    def _hls_outputs(self, plan: Plan) -> list[PlannedOutput]:
        layout = plan.hls
        files = sorted(p for p in layout.directory.rglob("*") if p.is_file())
        return [
            PlannedOutput(
                path=p,
                key=layout.prefix + p.relative_to(layout.directory).as_posix(),
                expect=layout.expect,
                verify=p.name == HLS_PLAYLIST,
            )
            for p in files
        ]

    async def _verify(self, path: Path, expect: Expectation) -> MediaInfo:
        try:
            info = MediaInfo.from_ffprobe(await self.runner.probe(str(path), protocols="file"))
        except ProbeFailed as exc:
            raise BadInput(f"output {path.name} does not decode", exc.error_lines) from None
        problems = verification_problems(info, expect)
        if problems:
            raise BadInput(f"output {path.name} failed verification: " + "; ".join(problems))
        return info

    async def _verify_master(self, plan: Plan) -> MediaInfo:
        layout = plan.hls
        master = layout.directory / HLS_MASTER
        if not master.is_file():
            raise BadInput("FFmpeg wrote no HLS master playlist")
        text = master.read_text(encoding="utf-8", errors="replace")
        listed = [line.strip() for line in text.splitlines() if line and not line.startswith("#")]
        expected = [f"{r.name}/{HLS_PLAYLIST}" for r in layout.renditions]
        if sorted(listed) != sorted(expected):
            raise BadInput(f"HLS master lists {listed}, expected {expected}")
        return MediaInfo(duration=None, format_name="hls")

    async def _upload_all(self, job: ProcessMedia, outputs: list[PlannedOutput]) -> list[_Uploaded]:
        # Segments first and the master last, so a reader never sees a playlist before its media.
        ordered = sorted(outputs, key=lambda o: (o.path.name == HLS_MASTER, o.verify, o.key))
        uploaded: list[_Uploaded] = []
        for output in ordered:
            size = await self.storage.upload(output.path, job.output_bucket, output.key)
            uploaded.append(_Uploaded(output.key, size))
        return uploaded

    async def _delete_stale(self, job: ProcessMedia, keep: set[str]) -> None:
        """A crashed earlier attempt may have left segments of another ladder: remove them."""
        existing = await self.storage.list_keys(job.output_bucket, job.output_key)
        stale = [key for key in hls_owned_keys(job.output_key, existing) if key not in keep]
        if stale:
            log.info("job %s: removing %d stale objects under the prefix", job.job_id, len(stale))
            await self.storage.delete(job.output_bucket, stale)

    async def _remove_outputs(self, job: ProcessMedia) -> None:
        """Delete whatever this job has in the output bucket (its keys are its own)."""
        try:
            if job.output_key.endswith("/"):
                listed = await self.storage.list_keys(job.output_bucket, job.output_key)
                keys = hls_owned_keys(job.output_key, listed)
            else:
                keys = [job.output_key]
            if keys:
                await self.storage.delete(job.output_bucket, keys)
        except TransientError as exc:
            log.warning("job %s: could not remove partial outputs: %s", job.job_id, exc)


# The names an HLS job writes under its prefix; only these are ever deleted there, so a
# user-chosen prefix that holds other objects keeps them.
_HLS_NAME = re.compile(
    rf"^(?:{re.escape(HLS_MASTER)}|[0-9A-Za-z_-]+/(?:{re.escape(HLS_PLAYLIST)}|segment_\d+\.ts))$"
)


def hls_owned_keys(prefix: str, keys: list[str]) -> list[str]:
    """The keys under ``prefix`` that an HLS job of ours would have written."""
    return [k for k in keys if k.startswith(prefix) and _HLS_NAME.match(k[len(prefix) :])]


def verification_problems(info: MediaInfo, expect: Expectation) -> list[str]:
    """What makes ``info`` differ from ``expect`` (empty when it passes)."""
    problems = []
    if expect.needs_video and not info.has_video:
        problems.append("no video stream")
    if expect.needs_audio and not info.has_audio:
        problems.append("no audio stream")
    if expect.video_codec and info.video_codec != expect.video_codec:
        problems.append(f"video codec {info.video_codec}, expected {expect.video_codec}")
    if expect.audio_codec and info.audio_codec != expect.audio_codec:
        problems.append(f"audio codec {info.audio_codec}, expected {expect.audio_codec}")
    if expect.height and info.height != expect.height:
        problems.append(f"height {info.height}, expected {expect.height}")
    if expect.min_duration is not None or expect.max_duration is not None:
        low = max(0.0, expect.min_duration or 0.0)
        high = expect.max_duration if expect.max_duration is not None else float("inf")
        if info.duration is None:
            problems.append("no duration")
        elif not low <= info.duration <= high:
            problems.append(f"duration {info.duration:.3f}s, expected {low:.3f}s to {high:.3f}s")
    return problems
