"""Transcoder replicas as their heartbeats describe them, and the job figures of a window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from mpr_shared.contracts import WorkerHeartbeat


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One row of ``workers``: the replica's latest heartbeat and when the gateway got it."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    interval_seconds: float
    beat_at: datetime  # the replica's clock: orders its heartbeats
    last_seen: datetime  # the gateway's clock: decides whether it is alive
    ffmpeg_version: str | None = None
    current_job_id: UUID | None = None
    current_job_progress: float | None = None

    @property
    def status(self) -> str:
        return "busy" if self.current_job_id is not None else "idle"

    @classmethod
    def of(cls, beat: WorkerHeartbeat, received_at: datetime) -> WorkerRecord:
        return cls(
            id=beat.worker,
            host=beat.host,
            pid=beat.pid,
            version=beat.version,
            started_at=beat.started_at,
            interval_seconds=beat.interval_seconds,
            beat_at=beat.occurred_at,
            last_seen=received_at,
            ffmpeg_version=beat.ffmpeg_version,
            current_job_id=beat.current_job_id,
            current_job_progress=beat.current_job_progress,
        )


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """A RabbitMQ queue as a passive declare reports it."""

    ready: int
    consumers: int


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """What finished in a time window: counts by final status, speeds and bytes."""

    counts: dict[str, int]
    median_speed: float | None
    bytes_in: int
    bytes_out: int
