"""REST response models (requests use the application's models, e.g. JobRequest)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from mpr_gateway.application.jobs import OutputView
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.executors import Executor
from mpr_gateway.domain.jobs import JobRecord
from mpr_shared.contracts import JobKind, JobStatus


class AssetOut(BaseModel):
    id: UUID
    bucket: str
    key: str = Field(description="S3 key in the input bucket.")
    media_type: str = Field(description="video | audio")
    size_bytes: int
    etag: str
    status: str = Field(description="active | deleted")
    probe_status: str = Field(description="pending | ok | failed")
    probe_error: str | None = None
    duration_seconds: float | None = Field(None, description="Probed duration (seconds).")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, asset: AssetRecord) -> AssetOut:
        return cls.model_validate(asset, from_attributes=True)


class OutputOut(BaseModel):
    key: str
    bucket: str
    size_bytes: int
    download_url: str = Field(description="Presigned GET URL (expires: PRESIGN_EXPIRES_SECONDS).")
    probe: dict[str, Any] | None = None

    @classmethod
    def of(cls, output: OutputView) -> OutputOut:
        return cls.model_validate(output, from_attributes=True)


class JobOut(BaseModel):
    id: UUID
    asset_id: UUID | None
    source_bucket: str
    source_key: str
    kind: JobKind
    preset: str | None
    spec: dict[str, Any] = Field(description="The job spec sent to the transcoder.")
    output_bucket: str
    output_key: str = Field(description="Output key, or a prefix ending in '/' (HLS).")
    priority: int
    status: JobStatus
    attempt: int = Field(description="Attempt number; a retry starts a new attempt.")
    progress: float = Field(description="Percent done, 0-100; never decreases.")
    worker: str | None
    error: str | None
    error_lines: list[str] | None = Field(description="FFmpeg's last error lines, if it failed.")
    outputs: list[OutputOut]
    webhook_url: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    fps: float | None = Field(description="Frames encoded per second (latest progress).")
    speed: float | None = Field(description="Encoding speed as a multiple of real time.")
    eta_seconds: float | None = Field(description="Seconds left, estimated; 0 when completed.")
    out_time_seconds: float | None = Field(description="Media seconds written so far.")
    log_tail: list[str] = Field(
        description="FFmpeg's last log lines (at most 20 of at most 500 characters), once the "
        "job ended; empty before."
    )
    executor: Executor = Field(Executor.RABBITMQ, description="rabbitmq | stepfunctions")

    @classmethod
    def of(cls, job: JobRecord, outputs: list[OutputView]) -> JobOut:
        return cls(
            id=job.id,
            asset_id=job.asset_id,
            source_bucket=job.source_bucket,
            source_key=job.source_key,
            kind=job.kind,
            preset=job.preset,
            spec=job.spec.model_dump(mode="json", exclude_none=True),
            output_bucket=job.output_bucket,
            output_key=job.output_key,
            priority=job.priority,
            status=JobStatus(job.status),
            attempt=job.attempt,
            progress=job.progress,
            worker=job.worker,
            error=job.error,
            error_lines=job.error_lines,
            outputs=[OutputOut.of(o) for o in outputs],
            webhook_url=job.webhook_url,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            fps=job.fps,
            speed=job.speed,
            eta_seconds=job.eta_seconds,
            out_time_seconds=job.out_time_seconds,
            log_tail=job.log_tail or [],
            executor=Executor(job.executor),
        )


class AssetDetailOut(AssetOut):
    probe: dict[str, Any] | None = Field(None, description="ffprobe summary.")
    jobs: list[JobOut] = Field(description="The asset's jobs, newest first (at most 100).")


class AssetPage(BaseModel):
    items: list[AssetOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class ScanRequest(BaseModel):
    prefix: str = Field("", max_length=1024, description="Only scan keys under this prefix.")


class CallbackEnvelope(BaseModel):
    """A transcoder event from the Lambda executor, signed with Standard Webhooks."""

    type: Literal["JobStarted", "JobProgress", "JobCompleted", "JobFailed", "JobCancelled"]
    data: dict[str, Any] = Field(description="The event, as the broker would carry it.")


class CallbackResult(BaseModel):
    outcome: Literal["applied", "ignored"] = Field(
        description="'ignored' when the event was a replay, stale or out of order."
    )
