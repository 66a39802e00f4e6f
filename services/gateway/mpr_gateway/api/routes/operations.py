"""/api/workers, /api/queue, /api/stats and /api/config: what the dashboard and the CLI show
about the system itself (live transcoders, the job queue, the last day's figures)."""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from mpr_gateway.api.routes._responses import errors
from mpr_gateway.application.operations import QueueView, StatsView
from mpr_gateway.deps import Queue, Workers, get_container, require_client
from mpr_gateway.domain.workers import WorkerRecord

router = APIRouter(
    prefix="/api",
    tags=["operations"],
    dependencies=[Depends(require_client)],
    responses=errors(401),
)


class WorkerOut(BaseModel):
    id: str = Field(description="Replica id (the worker named on its jobs).")
    host: str
    pid: int
    ffmpeg_version: str | None
    version: str = Field(description="MPR version the replica runs.")
    current_job_id: UUID | None = Field(description="The job it runs now; null when idle.")
    current_job_progress: float | None = Field(description="Percent done of that job.")
    status: Literal["busy", "idle"]
    started_at: datetime
    last_seen: datetime = Field(description="When the gateway got its latest heartbeat.")
    interval_seconds: float = Field(description="Its heartbeat interval.")

    @classmethod
    def of(cls, worker: WorkerRecord) -> WorkerOut:
        return cls.model_validate(worker, from_attributes=True)


class WorkerList(BaseModel):
    items: list[WorkerOut] = Field(
        description="Live replicas: a heartbeat within WORKER_TIMEOUT_SECONDS."
    )


class JobCounts(BaseModel):
    queued: int
    running: int


class QueueOut(BaseModel):
    queue: str = Field(description="The job queue's name.")
    ready: int = Field(description="Jobs waiting for a transcoder.")
    unacked: int | None = Field(
        description="Jobs delivered and not yet acknowledged (running); null without "
        "RABBITMQ_MANAGEMENT_URL."
    )
    consumers: int = Field(description="Transcoder replicas consuming the queue.")
    jobs: JobCounts = Field(description="Jobs by status in the database.")

    @classmethod
    def of(cls, view: QueueView) -> QueueOut:
        return cls(
            queue=view.queue,
            ready=view.ready,
            unacked=view.unacked,
            consumers=view.consumers,
            jobs=JobCounts(**view.jobs),
        )


class StatsOut(BaseModel):
    window_hours: int
    completed: int
    failed: int
    cancelled: int
    median_speed: float | None = Field(description="Median encoding speed (x real time).")
    bytes_in: int = Field(description="Source sizes of the completed jobs.")
    bytes_out: int = Field(description="Output sizes of the completed jobs.")

    @classmethod
    def of(cls, view: StatsView) -> StatsOut:
        return cls.model_validate(view, from_attributes=True)


class UploadLimits(BaseModel):
    max_bytes: int
    multipart_threshold_bytes: int
    part_size_bytes: int


class ConfigOut(BaseModel):
    events_url: str = Field(description="The notifier's base URL for SSE; '' for this origin.")
    version: str
    upload: UploadLimits


@router.get("/workers", response_model=WorkerList)
async def workers(service: Workers) -> WorkerList:
    """Live transcoder replicas with their current job; silent ones are forgotten."""
    return WorkerList(items=[WorkerOut.of(w) for w in await service.live()])


@router.get("/queue", response_model=QueueOut, responses=errors(503))
async def queue(service: Queue) -> QueueOut:
    """The job queue's depth and consumers (RabbitMQ) and the active jobs (database)."""
    return QueueOut.of(await service.depth())


@router.get("/stats", response_model=StatsOut)
async def stats(service: Queue) -> StatsOut:
    """Jobs finished in the last 24 hours, their median speed and bytes in and out."""
    return StatsOut.of(await service.stats())


@router.get("/config", response_model=ConfigOut)
async def config(request: Request) -> ConfigOut:
    """What a client needs to know of this deployment: the SSE URL and the upload limits."""
    settings = get_container(request).settings
    return ConfigOut(
        events_url=settings.public_events_url.rstrip("/"),
        version=gateway_version(),
        upload=UploadLimits(
            max_bytes=settings.max_upload_bytes,
            multipart_threshold_bytes=settings.upload_multipart_threshold_bytes,
            part_size_bytes=settings.upload_part_size_bytes,
        ),
    )


def gateway_version() -> str:
    try:
        return version("mpr-gateway")
    except PackageNotFoundError:
        return "unknown"
