"""Message contracts between MPR services. Commands are orders; events are facts.

Every message carries ``id``, ``occurred_at``, ``schema_version`` and correlation ids.
Commands are strict (required fields, unknown fields refused): a command is an order, and
garbage must not start work. Events are tolerant readers: unknown fields are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt

from mpr_shared.jobspec import JobKind as JobKind
from mpr_shared.jobspec import JobSpec as JobSpec
from mpr_shared.jobspec import TrimMode as TrimMode
from mpr_shared.keys import S3Key, S3Prefix

SCHEMA_VERSION: Final = 1
# The FFmpeg log tail a job event carries: its last lines, each cut, so that an event (and the
# jobs row, SSE and webhooks after it) stays small whatever FFmpeg printed.
LOG_TAIL_LINES: Final = 20
LOG_LINE_CHARS: Final = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Envelope fields shared by every command and event."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    ROUTING_KEY: ClassVar[str]

    id: UUID = Field(
        default_factory=uuid4, description="Unique message id; consumers dedupe on it."
    )
    occurred_at: datetime = Field(default_factory=utcnow, description="When it was created (UTC).")
    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Contract version.")
    correlation_id: str | None = Field(
        None, description="Id shared by every message of one flow (a job id or a request id)."
    )
    causation_id: UUID | None = Field(None, description="Id of the message that caused this one.")

    def caused(self, **fields: Any) -> dict[str, Any]:
        """Envelope fields for a message caused by this one."""
        return {"correlation_id": self.correlation_id, "causation_id": self.id, **fields}


class Command(Message):
    """An order addressed to one service."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Message):
    """A fact that happened; any service may listen."""


# ---------------------------------------------------------------------------- jobs


def bounded_tail(lines: list[str]) -> list[str]:
    """The last LOG_TAIL_LINES of ``lines``, each cut to LOG_LINE_CHARS characters."""
    return [line[:LOG_LINE_CHARS] for line in lines[-LOG_TAIL_LINES:]]


# Trimmed, never refused: an event is a fact, and a longer tail is no reason to lose it.
LogTail = Annotated[list[str], AfterValidator(bounded_tail)]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class OutputFile(BaseModel):
    """One object a job wrote to the output bucket."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="S3 key in the output bucket.")
    bucket: str = Field(description="Output bucket.")
    size_bytes: NonNegativeInt = Field(description="Object size.")
    probe: dict[str, Any] | None = Field(None, description="ffprobe summary of the output.")


class SourceStreams(BaseModel):
    """The catalog's probe of a source: its first video stream (cover art aside) and its
    first audio stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video_codec: str | None = Field(None, description="Codec of the video; None: no video.")
    width: int | None = Field(None, ge=1, description="Width of the video, pixels.")
    height: int | None = Field(None, ge=1, description="Height of the video, pixels.")
    audio_codec: str | None = Field(None, description="Codec of the audio; None: no audio.")


class ProcessMedia(Command):
    """Run one media job. Consumed by exactly one transcoder replica (or the Lambda executor)."""

    ROUTING_KEY: ClassVar[str] = "job.run"

    job_id: UUID = Field(description="Job id (owned by the gateway).")
    attempt: int = Field(1, ge=1, description="Attempt number; a retry is a new attempt.")
    asset_id: UUID | None = Field(None, description="Source asset id, when registered.")
    source_bucket: str = Field(description="Bucket of the source object.")
    source_key: S3Key = Field(description="S3 key of the source object.")
    source_duration: float | None = Field(None, ge=0, description="Probed duration, seconds.")
    source_streams: SourceStreams | None = Field(
        None,
        description="The source's probed streams, when known: with source_duration, the "
        "transcoder plans from them instead of probing the source again.",
    )
    spec: JobSpec = Field(description="What to produce.")
    output_bucket: str = Field(description="Bucket the outputs go to.")
    output_key: S3Key = Field(
        description="Output object key, or a prefix ending in '/' for multi-file outputs (HLS)."
    )
    priority: int = Field(0, ge=0, le=9, description="0 (lowest) to 9 (highest).")


class CreateJob(Command):
    """Ask the job owner (the gateway) to create and queue a job, e.g. from an auto-job rule."""

    ROUTING_KEY: ClassVar[str] = "job.create"

    source_bucket: str = Field(description="Bucket of the source object.")
    source_key: S3Key = Field(description="S3 key of the source object.")
    asset_id: UUID | None = Field(None, description="Source asset id, when registered.")
    spec: JobSpec = Field(description="What to produce.")
    priority: int = Field(0, ge=0, le=9, description="0 (lowest) to 9 (highest).")
    idempotency_key: str = Field(description="Same key, same job: retries never create two.")
    requested_by: str = Field(description="Who asked (e.g. 'catalog:auto-transcode').")


class CancelJob(Command):
    """Stop a job: a queued one never runs, a running one is killed and cleaned up."""

    ROUTING_KEY: ClassVar[str] = "job.cancel"

    job_id: UUID
    attempt: int | None = Field(
        None, description="The attempt to stop (the Step Functions execution of that attempt)."
    )
    reason: str = "cancelled by user"


class JobQueued(Event):
    ROUTING_KEY: ClassVar[str] = "job.queued"

    job_id: UUID
    attempt: int = 1
    asset_id: UUID | None = None
    source_key: str
    spec: JobSpec
    priority: int = 0


class JobStarted(Event):
    ROUTING_KEY: ClassVar[str] = "job.started"

    job_id: UUID
    attempt: int = 1
    worker: str = Field(description="Replica that runs the job.")


class JobProgress(Event):
    ROUTING_KEY: ClassVar[str] = "job.progress"

    job_id: UUID
    attempt: int = 1
    percent: float = Field(ge=0, le=100)
    out_time_seconds: float | None = None
    fps: float | None = None
    speed: float | None = Field(None, description="Encoding speed as a multiple of real time.")
    eta_seconds: float | None = None


class JobCompleted(Event):
    ROUTING_KEY: ClassVar[str] = "job.completed"

    job_id: UUID
    attempt: int = 1
    outputs: list[OutputFile]
    elapsed_seconds: float | None = None
    log_tail: LogTail = Field(
        default_factory=list,
        description=f"FFmpeg's last log lines (at most {LOG_TAIL_LINES}, each at most "
        f"{LOG_LINE_CHARS} characters; URLs unsigned, scratch paths named).",
    )


class JobFailed(Event):
    ROUTING_KEY: ClassVar[str] = "job.failed"

    job_id: UUID
    attempt: int = 1
    reason: str = Field(description="What went wrong, for humans.")
    error_lines: list[str] = Field(default_factory=list, description="FFmpeg's last error lines.")
    retryable: bool = Field(False, description="True for transient failures (S3, network).")
    log_tail: LogTail = Field(
        default_factory=list,
        description=f"FFmpeg's last log lines (at most {LOG_TAIL_LINES}, each at most "
        f"{LOG_LINE_CHARS} characters), as on JobCompleted.",
    )


class JobCancelled(Event):
    ROUTING_KEY: ClassVar[str] = "job.cancelled"

    job_id: UUID
    attempt: int = 1
    reason: str = "cancelled by user"


JOB_EVENTS: tuple[type[Event], ...] = (
    JobQueued,
    JobStarted,
    JobProgress,
    JobCompleted,
    JobFailed,
    JobCancelled,
)

# ---------------------------------------------------------------------------- workers


class WorkerHeartbeat(Event):
    """A transcoder replica is alive; sent every WORKER_HEARTBEAT_SECONDS while it runs."""

    ROUTING_KEY: ClassVar[str] = "worker.heartbeat"

    worker: str = Field(description="Replica id (the worker named on JobStarted).")
    host: str = Field(description="Host name the replica runs on.")
    pid: int = Field(ge=0, description="Process id of the replica on its host.")
    ffmpeg_version: str | None = Field(None, description="FFmpeg's version, e.g. '5.1.6'.")
    current_job_id: UUID | None = Field(None, description="The job it runs now; null when idle.")
    current_job_progress: float | None = Field(
        None, ge=0, le=100, description="Percent done of the current job, when known."
    )
    started_at: datetime = Field(description="When the replica started (UTC).")
    interval_seconds: float = Field(gt=0, description="Seconds until its next heartbeat.")
    version: str = Field(description="MPR version the replica runs.")


class WorkerStopped(Event):
    """A transcoder replica shut down gracefully; it sends no more heartbeats."""

    ROUTING_KEY: ClassVar[str] = "worker.stopped"

    worker: str = Field(description="Replica id, as on its heartbeats.")
    reason: str = Field("", description="Why it stopped (a signal, idle exit).")


WORKER_EVENTS: tuple[type[Event], ...] = (WorkerHeartbeat, WorkerStopped)

# ---------------------------------------------------------------------------- assets


class ProbeStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


class ScanBucket(Command):
    """List the input bucket and register new media (request/reply; the reply is ScanResult)."""

    ROUTING_KEY: ClassVar[str] = "catalog.scan"

    prefix: S3Prefix = Field(description="Only keys under this prefix ('' for the whole bucket).")


class ScanResult(BaseModel):
    """The spec's scan answer."""

    found: int = Field(description="Supported media objects seen.")
    registered: int = Field(description="Newly added assets.")
    skipped: int = Field(description="Already known assets.")
    files: list[str] = Field(description="Keys newly registered.")
    updated: int = Field(0, description="Known assets whose object changed (re-probed).")
    error: str | None = Field(None, description="Why the scan failed (then counts are 0).")


class RegisterObject(Command):
    """Register one object of the input bucket now (e.g. a finished upload), then probe it.

    Registering the same object twice changes nothing."""

    ROUTING_KEY: ClassVar[str] = "catalog.register"

    bucket: str = Field(description="Bucket of the object (the catalog's input bucket).")
    key: S3Key = Field(description="S3 key of the object.")
    size_bytes: NonNegativeInt = Field(description="Object size.")
    etag: str = Field(max_length=128, description="Object ETag, without quotes.")
    requested_by: str = Field(description="Who asked (e.g. 'gateway:upload:<upload id>').")


class AssetRegistered(Event):
    ROUTING_KEY: ClassVar[str] = "asset.registered"

    asset_id: UUID
    bucket: str
    key: str
    size_bytes: int
    etag: str
    media_type: str


class AssetProbed(Event):
    ROUTING_KEY: ClassVar[str] = "asset.probed"

    asset_id: UUID
    key: str
    probe_status: ProbeStatus
    duration_seconds: float | None = None
    error: str | None = None


class AssetUpdated(Event):
    ROUTING_KEY: ClassVar[str] = "asset.updated"

    asset_id: UUID
    key: str
    size_bytes: int
    etag: str


class AssetRemoved(Event):
    ROUTING_KEY: ClassVar[str] = "asset.removed"

    asset_id: UUID
    key: str


ASSET_EVENTS: tuple[type[Event], ...] = (AssetRegistered, AssetProbed, AssetUpdated, AssetRemoved)
EVENTS_BY_ROUTING_KEY: dict[str, type[Event]] = {
    e.ROUTING_KEY: e for e in JOB_EVENTS + WORKER_EVENTS + ASSET_EVENTS
}
