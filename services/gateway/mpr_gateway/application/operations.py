"""What an operator watches: live transcoder replicas, the job queue and the last day's
figures. REST (/api/workers, /api/queue, /api/stats), GraphQL and the worker-event
subscribers all call these."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mpr_gateway.application.jobs import utcnow
from mpr_gateway.application.ports import JobFigures, QueueProbe, UnackedCounter, WorkerRegistry
from mpr_gateway.domain.workers import WorkerRecord
from mpr_shared.contracts import JobStatus, WorkerHeartbeat, WorkerStopped

log = logging.getLogger(__name__)

STATS_WINDOW_HOURS = 24


@dataclass(frozen=True, slots=True)
class WorkerService:
    """The ``workers`` table from heartbeats; silent replicas are forgotten after the timeout."""

    registry: WorkerRegistry
    timeout_seconds: float
    clock: Callable[[], datetime] = utcnow

    async def heartbeat(self, beat: WorkerHeartbeat) -> None:
        now = self.clock()
        await self.registry.record(WorkerRecord.of(beat, now))
        if forgotten := await self.registry.expire(self._horizon(now)):
            log.info(
                "forgot %d transcoder replica(s) silent for %gs", forgotten, self.timeout_seconds
            )

    async def stopped(self, event: WorkerStopped) -> None:
        await self.registry.forget(event.worker, event.occurred_at)

    async def live(self) -> list[WorkerRecord]:
        return await self.registry.live(self._horizon(self.clock()))

    def _horizon(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.timeout_seconds)


@dataclass(frozen=True, slots=True)
class QueueView:
    queue: str
    ready: int
    unacked: int | None
    consumers: int
    jobs: dict[str, int]


@dataclass(frozen=True, slots=True)
class StatsView:
    window_hours: int
    completed: int
    failed: int
    cancelled: int
    median_speed: float | None
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class QueueService:
    """The job queue's depth from RabbitMQ and the job counts from the database."""

    queue: str
    probe: QueueProbe
    unacked: UnackedCounter
    figures: JobFigures
    clock: Callable[[], datetime] = utcnow

    async def depth(self) -> QueueView:
        depth = await self.probe.depth(self.queue)
        active = await self.figures.active()
        jobs = {s.value: active.get(s.value, 0) for s in (JobStatus.QUEUED, JobStatus.RUNNING)}
        unacked = await self.unacked.unacked(self.queue)
        return QueueView(self.queue, depth.ready, unacked, depth.consumers, jobs)

    async def stats(self) -> StatsView:
        since = self.clock() - timedelta(hours=STATS_WINDOW_HOURS)
        window = await self.figures.finished_since(since)
        return StatsView(
            window_hours=STATS_WINDOW_HOURS,
            completed=window.counts.get(JobStatus.COMPLETED, 0),
            failed=window.counts.get(JobStatus.FAILED, 0),
            cancelled=window.counts.get(JobStatus.CANCELLED, 0),
            median_speed=window.median_speed,
            bytes_in=window.bytes_in,
            bytes_out=window.bytes_out,
        )
