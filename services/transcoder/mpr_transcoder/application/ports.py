"""The application's ports. Adapters implement them; unit tests pass the fakes in
tests/unit/transcoder/fakes.py, which mypy checks against these Protocols."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from mpr_shared.contracts import Event, JobStatus, ProcessMedia
from mpr_transcoder.domain.progress import ProgressSample


class SourceMissing(Exception):
    """The source object does not exist (a bad input, not a transient failure)."""


class SourceTooLarge(Exception):
    """The source is larger than the limit it was fetched with; nothing was written."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the source is {size} bytes")
        self.size = size


class FFprobeFailed(Exception):
    """ffprobe could not read the file (the catalog's probe failures are its own)."""

    def __init__(self, message: str, error_lines: list[str]) -> None:
        super().__init__(message)
        self.error_lines = error_lines


@dataclass(frozen=True, slots=True)
class RunResult:
    """How an FFmpeg run ended."""

    returncode: int | None
    error_lines: list[str] = field(default_factory=list)
    stopped: bool = False  # killed because the job's stop signal fired
    log_tail: list[str] = field(default_factory=list)  # FFmpeg's last log lines, bounded

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.stopped

    @property
    def signalled(self) -> bool:
        """A signal ended the run: a negative code is death by a signal, and FFmpeg exits 255
        when SIGTERM or SIGINT stops it (``received_nb_signals`` in fftools/ffmpeg.c)."""
        code = self.returncode
        return not self.stopped and code is not None and (code < 0 or code == 255)


class Storage(Protocol):
    """S3 as the job core needs it. Methods raise TransientError for network trouble."""

    async def size(self, bucket: str, key: str) -> int: ...

    async def download(self, bucket: str, key: str, dest: Path, *, max_bytes: int) -> int:
        """Write the object to ``dest`` and return its size; SourceTooLarge, before a byte
        is written, when it is larger than ``max_bytes``; SourceMissing when it is absent."""
        ...

    async def presigned_url(self, bucket: str, key: str, expires_in: int) -> str: ...

    async def upload(self, path: Path, bucket: str, key: str) -> int: ...

    async def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    async def delete(self, bucket: str, keys: list[str]) -> None: ...


ProgressCallback = Callable[[ProgressSample], Awaitable[None]]


class FFmpegRunner(Protocol):
    """Runs FFmpeg (a subprocess, argument lists, never a shell) and probes media files."""

    async def run(
        self, args: list[str], *, on_progress: ProgressCallback, stop: asyncio.Event
    ) -> RunResult: ...

    async def probe(
        self, target: str, *, protocols: str, formats: str | None = None
    ) -> dict[str, Any]:
        """ffprobe's JSON; ``formats`` limits the demuxers (sources), None allows any (outputs)."""
        ...


class EventPublisher(Protocol):
    """Delivers job events: the broker (with confirms) or the Lambda callback."""

    async def publish(self, event: Event) -> None: ...


class JobMetrics(Protocol):
    """What the job core reports about its runs."""

    def ffmpeg_speed(self, kind: str, preset: str, speed: float) -> None:
        """FFmpeg's reported speed for a finished run (media seconds per wall second)."""
        ...


@dataclass(frozen=True, slots=True)
class JobRow:
    """The gateway's record of a job, as the transcoder reads it (never writes)."""

    status: JobStatus
    attempt: int


class JobRows(Protocol):
    """Reads the ``jobs`` table; raises TransientError when it cannot."""

    async def get(self, job_id: UUID) -> JobRow | None:
        """The job's row, or None when it has none."""
        ...


class Delivery(Protocol):
    """One broker delivery of a ProcessMedia command."""

    @property
    def deliveries(self) -> int:
        """How many deliveries this job had, this one included (1 for the first)."""
        ...

    @property
    def redelivered(self) -> bool:
        """The broker delivered it before and the consumer vanished without an ack."""
        ...

    def lost(self) -> bool:
        """True once the broker has taken the delivery back (its channel closed)."""
        ...


class Redelivery(Protocol):
    """Puts a job back with a delivery count, or dead-letters it."""

    async def republish(self, job: ProcessMedia, deliveries: int) -> None:
        """Publish ``job`` again (confirmed), carrying ``deliveries`` as its count."""
        ...

    async def dead_letter(
        self, job: ProcessMedia, reason: str, deliveries: int, cause: BaseException
    ) -> None:
        """Dead-letter ``job``; ``cause`` names the error type in its headers."""
        ...
