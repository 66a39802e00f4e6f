"""The job core: one media job from source object to verified, uploaded outputs.

It knows nothing of RabbitMQ or Lambda: the consumer (``worker.py``) and the Lambda handler
both call :meth:`JobCore.run` with their own ports. It returns the job's final event
(JobCompleted, JobFailed or JobCancelled) and raises ``TransientError`` (retry later) or
``Interrupted`` (shutdown or lost delivery: hand the job back).

A job runs in phases, each a method that takes what the earlier ones produced: open the
source, probe it, plan the FFmpeg command, encode, verify and upload. ``_phases`` only
sequences them and times each one (the replica logs the timings), so phases can be
reordered or overlapped without touching what each does.

What overlaps, for short jobs (bench/README.md has the measurements): the source downloads
while the caller's ``admit`` check (the worker's jobs-row read) runs and while JobStarted is
being confirmed, and FFmpeg's output is read on without waiting for progress confirms. The
order holds all the same: JobStarted goes out only once the job is admitted, each later event
only after the one before it was confirmed, and all of them are confirmed before ``run``
returns the final event (``_JobEvents``).

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
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, overload
from uuid import UUID

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
from mpr_transcoder.application.ports import (
    EventPublisher,
    FFmpegRunner,
    FFprobeFailed,
    JobMetrics,
    SourceMissing,
    SourceTooLarge,
    Storage,
)
from mpr_transcoder.domain.diagnostics import name_scratch_paths
from mpr_transcoder.domain.errors import (
    BadInput,
    FFmpegStopped,
    Interrupted,
    StopReason,
    TransientError,
)
from mpr_transcoder.domain.ffmpeg_args import (
    HLS_MASTER,
    HLS_PLAYLIST,
    LOCAL_PROTOCOLS,
    SOURCE_FORMATS,
    URL_PROTOCOLS,
    HlsLayout,
    InputMode,
    Limits,
    Plan,
    PlannedOutput,
    build_plan,
    source_extension,
)
from mpr_transcoder.domain.media import MediaInfo
from mpr_transcoder.domain.progress import ProgressSample, ProgressThrottle
from mpr_transcoder.domain.verification import (
    hls_owned_keys,
    master_playlist_problem,
    verification_problems,
)

log = logging.getLogger(__name__)

# FFmpeg errors that mean the network failed while reading a presigned URL: worth a retry.
_NETWORK_ERROR = re.compile(
    r"connection (refused|reset|timed out)|timed out|network is unreachable|"
    r"server returned 5(\d\d|xx)|i/o error|end of file",
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


# Asked once the download has started: may the job run? (False: it ends unreported.)
Admission = Callable[[], Awaitable[bool]]


class _JobEvents:
    """A job's events before its final one, in order without holding the job up: each is
    published once the one before it is confirmed, and after a required one (JobStarted)
    failed none follows. ``settle`` waits for all of them and raises that failure."""

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher
        self.pending: list[asyncio.Task[None]] = []
        self.failed: Exception | None = None

    def send(self, event: Event, *, required: bool = False) -> None:
        self.pending = [task for task in self.pending if not task.done()]
        previous = self.pending[-1] if self.pending else None
        self.pending.append(asyncio.create_task(self._send(event, previous, required)))

    async def _send(
        self, event: Event, previous: asyncio.Task[None] | None, required: bool
    ) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        if self.failed is not None:
            return
        try:
            await self.publisher.publish(event)
        except Exception as exc:
            if required:
                self.failed = exc
            else:  # progress is best effort: a lost one must not fail the job
                log.warning("could not publish %s", type(event).__name__, exc_info=True)

    async def settle(self, *, raising: bool = True) -> None:
        """Wait until every event sent is confirmed (or failed)."""
        if self.pending:
            await asyncio.wait(self.pending)
        self.pending = []
        if self.failed is not None:
            if raising:
                raise self.failed
            log.warning("could not publish JobStarted: %s", self.failed)

    def cancel(self) -> None:
        for task in self.pending:
            task.cancel()


@dataclass(frozen=True, slots=True)
class Source:
    """Where FFmpeg reads the source from, through which protocols, and the job's scratch
    directory (where a downloaded source and the outputs are)."""

    target: str
    protocols: str
    scratch: Path

    def named(self, lines: list[str]) -> list[str]:
        """``lines`` with "the source" and "the output" for the paths a user must not see."""
        return name_scratch_paths(lines, source=self.target, scratch=str(self.scratch))


@dataclass(slots=True)
class _Uploaded:
    key: str
    size: int
    probe: dict[str, Any] | None = None


class _PhaseTimer:
    """Milliseconds spent in each phase of one job, for the replica's log."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.mark = clock()
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self.clock()
        self.phases[name] = round((now - self.mark) * 1000)
        self.mark = now


class JobCore:
    """Runs one job; one instance serves every job of a replica (or of a Lambda call)."""

    def __init__(
        self,
        *,
        config: CoreConfig,
        storage: Storage,
        runner: FFmpegRunner,
        publisher: EventPublisher,
        metrics: JobMetrics,
        worker: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.storage = storage
        self.runner = runner
        self.publisher = publisher
        self.metrics = metrics
        self.worker = worker
        self.clock = clock
        self.progress: dict[UUID, float] = {}  # the running jobs' last published percent

    @overload
    async def run(self, job: ProcessMedia, stop: StopSignal | None = None) -> Event: ...

    @overload
    async def run(
        self, job: ProcessMedia, stop: StopSignal | None, admit: Admission
    ) -> Event | None: ...

    async def run(
        self, job: ProcessMedia, stop: StopSignal | None = None, admit: Admission | None = None
    ) -> Event | None:
        """Run ``job`` and return its final event, every earlier event of the job confirmed;
        None when ``admit`` said no. Temp files are gone when this returns."""
        events = _JobEvents(self.publisher)
        try:
            final = await self._run(job, stop or StopSignal(), admit, events)
        except asyncio.CancelledError:
            events.cancel()
            raise
        except BaseException:
            await events.settle(raising=False)  # the job's own error says more
            raise
        await events.settle()
        return final

    async def _run(
        self, job: ProcessMedia, stop: StopSignal, admit: Admission | None, events: _JobEvents
    ) -> Event | None:
        started = self.clock()
        timer = _PhaseTimer(self.clock)
        workdir = self.config.scratch / f"job-{secrets.token_hex(8)}"
        workdir.mkdir(parents=True, exist_ok=False)
        try:
            source = await self._admitted(job, workdir, stop, admit, events)
            if source is None:
                return None
            timer.lap("source")
            outputs, tail = await self._phases(job, source, stop, events, timer)
            elapsed = round(self.clock() - started, 3)
            return JobCompleted(
                **_envelope(job), outputs=outputs, elapsed_seconds=elapsed, log_tail=tail
            )
        except BadInput as exc:
            log.warning("job %s failed: %s %s", job.job_id, exc.reason, exc.error_lines)
            await self._remove_outputs(job)
            return JobFailed(
                **_envelope(job),
                reason=exc.reason,
                error_lines=exc.error_lines,
                log_tail=exc.log_tail,
            )
        except Interrupted as exc:
            return await self._interrupted(job, exc)
        finally:
            self.progress.pop(job.job_id, None)
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _interrupted(self, job: ProcessMedia, exc: Interrupted) -> Event:
        """Cancel and timeout end the job here; shutdown and a lost delivery hand it back."""
        if exc.reason is StopReason.CANCEL:
            await self._remove_outputs(job)
            return JobCancelled(**_envelope(job), reason=exc.detail or "cancelled")
        if exc.reason is StopReason.TIMEOUT:
            await self._remove_outputs(job)
            return JobFailed(**_envelope(job), reason=exc.detail or "job timed out")
        raise exc  # the job goes back to the queue as it was

    async def _admitted(
        self,
        job: ProcessMedia,
        workdir: Path,
        stop: StopSignal,
        admit: Admission | None,
        events: _JobEvents,
    ) -> Source | None:
        """The opened source, with JobStarted on its way, once ``admit`` lets the job run;
        None when it does not. The download overlaps both."""
        opening = asyncio.ensure_future(self.open_source(job, workdir))
        try:
            if admit is not None and not await admit():
                return None
            stop.check()
            events.send(JobStarted(**_envelope(job), worker=self.worker), required=True)
            return await opening
        except asyncio.CancelledError:
            opening.cancel()
            raise
        finally:
            # The download's threads cannot be cancelled: it ends before its work dir goes.
            await asyncio.wait({opening})
            if not opening.cancelled():
                opening.exception()  # retrieved: a job that does not run reports nothing

    async def _phases(
        self,
        job: ProcessMedia,
        source: Source,
        stop: StopSignal,
        events: _JobEvents,
        timer: _PhaseTimer,
    ) -> tuple[list[OutputFile], list[str]]:
        """The outputs, and FFmpeg's log tail."""
        stop.check()
        info = await self.probe_source(job, source)
        timer.lap("probe")
        stop.check()
        plan = self.plan(job, info, source)
        tail = await self.encode(job, plan, source, stop, events)
        timer.lap("ffmpeg")
        stop.check()
        try:
            uploaded = await self.verify_and_upload(job, plan, source)
        except BadInput as exc:
            exc.log_tail = exc.log_tail or tail  # the encode's log explains a bad output
            raise
        timer.lap("verify_upload")
        stop.check()
        log.info("job %s: outputs ready %s; phases (ms) %s", job.job_id, plan.notes, timer.phases)
        outputs = [
            OutputFile(key=u.key, bucket=job.output_bucket, size_bytes=u.size, probe=u.probe)
            for u in uploaded
        ]
        return outputs, tail

    # ---------------------------------------------------------------- source

    async def open_source(self, job: ProcessMedia, workdir: Path) -> Source:
        """Download the source (or presign a URL for FFmpeg), within MAX_INPUT_BYTES."""
        limit = self.config.max_input_bytes
        try:
            if self.config.input_mode is InputMode.URL:
                if (size := await self.storage.size(job.source_bucket, job.source_key)) > limit:
                    raise SourceTooLarge(size)
                url = await self.storage.presigned_url(
                    job.source_bucket, job.source_key, self.config.url_expiry_seconds
                )
                return Source(url, URL_PROTOCOLS, workdir)
            # A generated name: keys never become local paths.
            local = workdir / f"source{source_extension(job)}"
            await self.storage.download(job.source_bucket, job.source_key, local, max_bytes=limit)
            return Source(str(local), LOCAL_PROTOCOLS, workdir)
        except SourceMissing:
            raise _missing(job) from None
        except SourceTooLarge as exc:
            raise BadInput(
                f"source is {exc.size} bytes; the limit (MAX_INPUT_BYTES) is {limit}"
            ) from None

    async def probe_source(self, job: ProcessMedia, source: Source) -> MediaInfo:
        """What the plan needs to know of the source, within the configured limits."""
        streams = job.source_streams
        if job.source_duration and streams is not None:
            # The catalog probed this source: planning from its facts saves probing it again
            # (FFmpeg still reads it through the same whitelists; the output is verified).
            info = MediaInfo(
                duration=job.source_duration,
                format_name=None,
                video_codec=streams.video_codec,
                width=streams.width,
                height=streams.height,
                audio_codec=streams.audio_codec,
            )
        elif _copy_trim(job) and job.source_duration:
            # A stream copy needs only the duration, which the catalog already probed.
            info = MediaInfo(duration=job.source_duration, format_name=None)
        else:
            info = await self._ffprobe_source(source)
        if info.duration is not None and info.duration > self.config.max_duration_seconds:
            raise BadInput(
                f"source lasts {info.duration:.0f}s; the limit (MAX_DURATION_SECONDS) is "
                f"{self.config.max_duration_seconds:.0f}s"
            )
        return info

    async def _ffprobe_source(self, source: Source) -> MediaInfo:
        try:
            data = await self.runner.probe(
                source.target, protocols=source.protocols, formats=SOURCE_FORMATS
            )
        except FFprobeFailed as exc:
            lines = source.named(exc.error_lines)
            if source.protocols == URL_PROTOCOLS and _NETWORK_ERROR.search(" ".join(lines)):
                raise TransientError(f"could not read the source URL: {exc}") from None
            last = f": {lines[-1]}" if lines else ""
            raise BadInput(f"the source is not a decodable media file{last}", lines) from None
        return MediaInfo.from_ffprobe(data)

    # ---------------------------------------------------------------- FFmpeg

    def plan(self, job: ProcessMedia, info: MediaInfo, source: Source) -> Plan:
        plan = build_plan(
            job,
            job.spec.output_preset,
            info,
            target=source.target,
            protocols=source.protocols,
            workdir=source.scratch,
            limits=self.config.limits,
            binary=self.config.ffmpeg_binary,
        )
        log.debug("job %s: ffmpeg %s", job.job_id, plan.args)
        return plan

    async def encode(
        self, job: ProcessMedia, plan: Plan, source: Source, stop: StopSignal, events: _JobEvents
    ) -> list[str]:
        """Run FFmpeg, publishing throttled progress; returns its log tail (scratch paths
        named). BadInput with its lines and log tail on failure."""
        throttle = ProgressThrottle(plan.expected_seconds, self.clock)
        speeds: list[float] = []

        async def on_progress(sample: ProgressSample) -> None:
            if sample.speed is not None:
                speeds.append(sample.speed)
            update = throttle.update(sample)
            if update is not None:  # sent in order, confirmed before the final event
                self.progress[job.job_id] = update.percent
                events.send(JobProgress(**_envelope(job), **asdict(update)))

        result = await self.runner.run(plan.args, on_progress=on_progress, stop=stop.event)
        stop.check()
        tail = source.named(result.log_tail)
        if result.ok:
            if speeds:
                self.metrics.ffmpeg_speed(job.spec.kind, job.spec.preset or "none", speeds[-1])
            return tail
        if result.signalled:
            raise FFmpegStopped(
                f"a signal from outside the replica stopped FFmpeg (exit code {result.returncode})"
            )
        lines = source.named(result.error_lines)
        if self.config.input_mode is InputMode.URL and _NETWORK_ERROR.search(" ".join(lines)):
            raise TransientError("FFmpeg lost the source URL: " + "; ".join(lines[-2:]))
        last = lines[-1] if lines else "no error output"
        raise BadInput(f"FFmpeg failed (exit code {result.returncode}): {last}", lines, tail)

    # ---------------------------------------------------------------- outputs

    async def verify_and_upload(
        self, job: ProcessMedia, plan: Plan, source: Source
    ) -> list[_Uploaded]:
        """Verify and upload side by side (verification is read-only); a failed check
        removes what was uploaded before the job is reported failed."""
        outputs = _hls_outputs(plan.hls) if plan.hls else list(plan.outputs)
        if not outputs or not all(o.path.is_file() for o in outputs):
            raise BadInput("FFmpeg wrote no output")
        verified = [o for o in outputs if o.verify]
        verifying = asyncio.ensure_future(self._verify_all(verified, plan.hls, source))
        uploading = asyncio.ensure_future(self._upload_all(job, outputs))
        await asyncio.wait({verifying, uploading})  # both end before either error is raised
        probes, uploaded = verifying.result(), uploading.result()
        by_key = {o.key: info.summary() for o, info in zip(verified, probes, strict=True)}
        for item in uploaded:
            item.probe = by_key.get(item.key)
        if plan.hls:
            await self._delete_stale(job, {u.key for u in uploaded})
        return uploaded

    async def _verify_all(
        self, outputs: list[PlannedOutput], hls: HlsLayout | None, source: Source
    ) -> list[MediaInfo]:
        if hls:
            _check_master(hls)
        checks = (self._verify(o, _output_name(o, hls), source) for o in outputs)
        return list(await asyncio.gather(*checks))

    async def _verify(self, output: PlannedOutput, name: str, source: Source) -> MediaInfo:
        try:
            data = await self.runner.probe(str(output.path), protocols=LOCAL_PROTOCOLS)
        except FFprobeFailed as exc:
            raise BadInput(f"{name} does not decode", source.named(exc.error_lines)) from None
        info = MediaInfo.from_ffprobe(data)
        problems = verification_problems(info, output.expect)
        if problems:
            raise BadInput(f"{name} failed verification: " + "; ".join(problems))
        return info

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


def _envelope(job: ProcessMedia) -> dict[str, Any]:
    return job.caused(job_id=job.job_id, attempt=job.attempt)


def _missing(job: ProcessMedia) -> BadInput:
    return BadInput(f"source s3://{job.source_bucket}/{job.source_key} does not exist")


def _copy_trim(job: ProcessMedia) -> bool:
    spec = job.spec
    return spec.kind is JobKind.TRIM and (spec.mode or TrimMode.COPY) is TrimMode.COPY


def _hls_outputs(layout: HlsLayout) -> list[PlannedOutput]:
    """Every file FFmpeg wrote under the HLS directory; only the playlists are probed."""
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


def _output_name(output: PlannedOutput, hls: HlsLayout | None) -> str:
    """How a reason names an output: "the output", or one file of an HLS output."""
    return f"the output's {output.key.removeprefix(hls.prefix)}" if hls else "the output"


def _check_master(layout: HlsLayout) -> None:
    master = layout.directory / HLS_MASTER
    if not master.is_file():
        raise BadInput("FFmpeg wrote no HLS master playlist")
    text = master.read_text(encoding="utf-8", errors="replace")
    problem = master_playlist_problem(text, layout.renditions)
    if problem:
        raise BadInput(problem)
