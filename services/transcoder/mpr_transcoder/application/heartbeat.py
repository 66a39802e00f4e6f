"""The replica's heartbeat: who it is and what it runs, every WORKER_HEARTBEAT_SECONDS, and
WorkerStopped when it shuts down gracefully. The gateway keeps the ``workers`` table from them
(GET /api/workers); a replica that stops beating is forgotten after WORKER_TIMEOUT_SECONDS."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from mpr_shared.contracts import WorkerHeartbeat, WorkerStopped
from mpr_transcoder.application.ports import EventPublisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replica:
    """What a heartbeat says about the replica itself."""

    worker: str
    host: str
    pid: int
    version: str
    started_at: datetime


CurrentJob = Callable[[], tuple[UUID, float | None] | None]


class Heartbeat:
    """Publishes WorkerHeartbeat every ``interval`` seconds; a failed beat is only logged
    (the next one may get through, and the gateway forgets the replica if none does)."""

    def __init__(
        self,
        *,
        replica: Replica,
        publisher: EventPublisher,
        current_job: CurrentJob,
        ffmpeg_version: Callable[[], Awaitable[str | None]],
        interval: float,
    ) -> None:
        self.replica = replica
        self.publisher = publisher
        self.current_job = current_job
        self.ffmpeg_version = ffmpeg_version
        self.interval = interval
        self._ffmpeg: str | None = None

    def message(self) -> WorkerHeartbeat:
        current = self.current_job()
        job_id, progress = current if current is not None else (None, None)
        return WorkerHeartbeat(
            worker=self.replica.worker,
            host=self.replica.host,
            pid=self.replica.pid,
            ffmpeg_version=self._ffmpeg,
            current_job_id=job_id,
            current_job_progress=progress,
            started_at=self.replica.started_at,
            interval_seconds=self.interval,
            version=self.replica.version,
        )

    async def beat(self) -> bool:
        """One heartbeat, confirmed within an interval; False when it could not be sent."""
        try:
            await asyncio.wait_for(self.publisher.publish(self.message()), self.interval)
        except Exception as exc:
            log.warning("heartbeat of %s not sent: %s", self.replica.worker, exc)
            return False
        return True

    async def run(self) -> None:
        """Beat now and every interval, until cancelled."""
        self._ffmpeg = await self.ffmpeg_version()
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def stopped(self, reason: str) -> None:
        """Say goodbye, so the replica leaves GET /api/workers at once."""
        try:
            stopped = WorkerStopped(worker=self.replica.worker, reason=reason)
            await asyncio.wait_for(self.publisher.publish(stopped), self.interval)
        except Exception as exc:
            log.warning("WorkerStopped of %s not sent: %s", self.replica.worker, exc)
