"""The job core's ports. Adapters implement them for real; tests pass fakes (tests/unit)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from mpr_shared.contracts import Event, JobStatus
from mpr_transcoder.progress import ProgressSample


class SourceMissing(Exception):
    """The source object does not exist (a bad input, not a transient failure)."""


class ProbeFailed(Exception):
    """ffprobe could not read the file."""

    def __init__(self, message: str, error_lines: list[str]) -> None:
        super().__init__(message)
        self.error_lines = error_lines


@dataclass(frozen=True, slots=True)
class RunResult:
    """How an FFmpeg run ended."""

    returncode: int | None
    error_lines: list[str] = field(default_factory=list)
    stopped: bool = False  # killed because the job's stop signal fired

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.stopped


class Storage(Protocol):
    """S3 as the job core needs it. Methods raise TransientError for network trouble."""

    async def size(self, bucket: str, key: str) -> int: ...

    async def download(self, bucket: str, key: str, dest: Path) -> None: ...

    async def presigned_url(self, bucket: str, key: str, expires_in: int) -> str: ...

    async def upload(self, path: Path, bucket: str, key: str) -> int: ...

    async def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    async def delete(self, bucket: str, keys: list[str]) -> None: ...


ProgressCallback = Callable[[ProgressSample], Awaitable[None]]


class FFmpegRunner(Protocol):
    """Runs FFmpeg and ffprobe as subprocesses (argument lists, never a shell)."""

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


@dataclass(frozen=True, slots=True)
class JobState:
    """The gateway's view of a job (read-only here)."""

    status: JobStatus
    attempt: int


class JobStateReader(Protocol):
    """Reads the ``jobs`` table; None when the job has no row."""

    async def get(self, job_id: UUID) -> JobState | None: ...
