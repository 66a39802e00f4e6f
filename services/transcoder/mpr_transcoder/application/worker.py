"""The consumer side of the job core: which deliveries run, when they are acked, retried,
dead-lettered or handed back. Transport-free: the FastStream subscriber adapts a RabbitMQ
delivery to the ``Delivery`` port (application/ports.py).

Delivery semantics (ARCHITECTURE.md, "Delivery guarantees"):

- Prefetch 1: a replica holds one job at a time; any number of replicas share the queue.
- Ack only after the outputs are uploaded and the final event is confirmed by the broker:
  the handler returns after ``publish`` (which waits for the publisher confirm), and only
  then does FastStream ack. A replica killed before that leaves the delivery unacked, RabbitMQ
  redelivers it, and the rerun writes the same deterministic keys: one output set.
- Delivery limit: classic queues (needed for priorities on RabbitMQ 3.10) count nothing, and
  a quorum queue's count (QUEUE_TYPE=quorum) starts again with every republished copy, so
  the count travels in the ``x-mpr-deliveries`` header. A delivery RabbitMQ flags as
  *redelivered* (its consumer died) is republished with the count raised before any work,
  and a transient failure is republished with the count raised after a backoff. Past
  MAX_DELIVERIES the job goes to ``mpr.transcoder.jobs.dlq`` with the reason and a
  JobFailed(retryable=True) is published. Bad input is a result, not a retry: JobFailed, ack.
- Long jobs: RabbitMQ closes the channel of a consumer that holds a delivery longer than
  ``consumer_timeout`` (30 min by default; RabbitMQ 3.10 has no per-queue override), which
  would run the job twice. Our infra raises the node-wide value to 6 h (scripts/infra.sh via
  ``rabbitmqctl eval``; compose and k8s in rabbitmq.conf), and every job is stopped at
  MAX_JOB_SECONDS, which TranscoderSettings refuses to set at or above that timeout minus the
  shutdown grace: an overlong job fails cleanly (JobFailed, ack) instead of being
  redelivered while it still runs. Should the broker take a delivery back anyway (timeout
  misconfigured, connection lost), FFmpeg is killed without publishing anything, so only the
  new delivery's run reports: aio-pika cancels the handler when the connection drops, and a
  watchdog catches a closed channel within a second.
  https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout
- SIGTERM: the replica first stops consuming (basic.cancel, so nothing new arrives), then
  ``drain`` lets the running job finish for SHUTDOWN_GRACE_SECONDS, kills FFmpeg, removes temp
  files and hands the job back. A hand-back republishes the job with the same
  ``x-mpr-deliveries`` (confirmed) and then acks the delivery: it spends no delivery. A nack
  with requeue would not do: RabbitMQ flags a requeued message *redelivered*, which is how a
  crash looks, so every scale-in would count against the job's MAX_DELIVERIES. A delivery that
  reaches a replica already shutting down, and a job waiting out a retry backoff, are handed
  back the same way. The one window left: a delivery RabbitMQ sent in the instant before it
  processed the basic.cancel is requeued when the channel closes, and counts once.
- Signals sent to more than the replica (systemd's default KillMode=control-group signals
  every process of the unit; ``kill -TERM -PGID`` the process group): FFmpeg runs in a session
  of its own, so a signal to the replica's group never reaches it. One that reaches it anyway
  (a whole cgroup, the OOM killer) stops the job as an interruption (``FFmpegStopped``), never
  as bad input: handed back when the replica is shutting down within a second, else retried.
- The jobs row: the gateway's outbox commits a job's row before its ProcessMedia is
  published, so a ProcessMedia whose job has no row is forged, or stale (its job was
  deleted): dead-lettered as ``UnknownJob`` with the reason, FFmpeg never started. A first
  delivery's row is read while its source downloads (the read has no side effect; JobStarted
  waits for it), a redelivered one's before anything else. When the
  table cannot be read (the database is down) the job runs anyway and the log says so: a
  database outage must not stop transcoding, a cancel still reaches a running job, and the
  gateway ignores events of a job it already finished.
- Cancel: CancelJob reaches every replica (a per-replica live queue). A queued job whose id
  was cancelled recently is skipped and reported JobCancelled (the gateway may still show it
  ``running`` after a crash or hand-back, and a repeated JobCancelled is a no-op there); one
  whose ``jobs`` row says it is terminal or superseded by a newer attempt is skipped silently;
  a running one is killed and reported cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from mpr_shared.contracts import CancelJob, JobCancelled, JobFailed, ProcessMedia
from mpr_transcoder.application.job_core import JobCore, StopSignal
from mpr_transcoder.application.ports import Delivery, EventPublisher, JobRows, Redelivery
from mpr_transcoder.domain.errors import (
    FFmpegStopped,
    Interrupted,
    ReplicaDied,
    StopReason,
    TransientError,
    UnknownJob,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    max_deliveries: int = 5
    max_job_seconds: float = 5 * 3600.0
    retry_backoff_seconds: float = 2.0
    lost_check_seconds: float = 1.0
    handback_timeout_seconds: float = 10.0
    # A signal to a whole cgroup stops FFmpeg and reaches the replica together; FFmpeg's exit
    # may be seen first, so its job waits this long to see whether the replica shuts down.
    signal_settle_seconds: float = 1.0


class RecentIds:
    """A bounded map of ids to a note, oldest dropped first (cancelled job ids and reasons)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._ids: OrderedDict[UUID, str] = OrderedDict()

    def add(self, value: UUID, note: str = "") -> None:
        self._ids[value] = note
        self._ids.move_to_end(value)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def note(self, value: UUID) -> str:
        return self._ids.get(value, "")

    def __contains__(self, value: object) -> bool:
        return value in self._ids


class JobWorker:
    """Runs the ProcessMedia deliveries of one replica."""

    def __init__(
        self,
        *,
        core: JobCore,
        publisher: EventPublisher,
        rows: JobRows,
        redelivery: Redelivery,
        config: WorkerConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.publisher = publisher
        self.rows = rows
        self.redelivery = redelivery
        self.config = config
        self.clock = clock
        self.running: dict[UUID, StopSignal] = {}
        self.cancelled = RecentIds()
        self._draining = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._handling = 0
        self._last_handled = clock()

    def idle_seconds(self) -> float:
        """How long this replica has had no delivery to handle (0 while it handles one)."""
        return 0.0 if self._handling else self.clock() - self._last_handled

    async def handle(self, job: ProcessMedia, delivery: Delivery) -> str:
        """Run one delivery to its end; returning means 'ack'. Returns the outcome
        (completed, failed, cancelled, skipped, retried, handed-back, dead-lettered, lost)."""
        self._handling += 1
        try:
            return await self._handle(job, delivery)
        finally:
            self._handling -= 1
            self._last_handled = self.clock()

    async def _handle(self, job: ProcessMedia, delivery: Delivery) -> str:
        log.info(
            "job %s attempt %d (message %s, delivery %d%s)",
            job.job_id,
            job.attempt,
            job.id,
            delivery.deliveries,
            ", redelivered" if delivery.redelivered else "",
        )
        if self._draining.is_set():
            return await self._hand_back(job, delivery, "the replica is shutting down")
        if job.job_id in self.cancelled:
            log.info("job %s was cancelled; skipping it", job.job_id)
            await self._report_cancelled(job)
            return "skipped"
        if not delivery.redelivered:
            return await self._run(job, delivery)  # the jobs row is read as the source downloads
        if (outcome := await self._screen(job, delivery)) is not None:
            return outcome
        return await self._count_crash(job, delivery)

    def current_job(self) -> tuple[UUID, float | None] | None:
        """The job this replica runs now and its last published percent, or None when idle."""
        for job_id in self.running:
            return job_id, self.core.progress.get(job_id)
        return None

    def cancel(self, command: CancelJob) -> bool:
        """Remember the cancel and stop the job if it runs here; True when it did."""
        self.cancelled.add(command.job_id, command.reason)
        stop = self.running.get(command.job_id)
        if stop is None:
            return False
        log.info("cancelling running job %s: %s", command.job_id, command.reason)
        stop.stop(StopReason.CANCEL, command.reason)
        return True

    async def drain(self, grace: float) -> None:
        """Take no more work; give the running job ``grace`` seconds, then hand it back."""
        self._draining.set()
        if self.running:
            log.info("shutting down: waiting up to %gs for %d job(s)", grace, len(self.running))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        for job_id, stop in list(self.running.items()):
            log.warning("shutting down: handing job %s back to the queue", job_id)
            stop.stop(StopReason.SHUTDOWN, "replica shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.config.handback_timeout_seconds)

    async def _report_cancelled(self, job: ProcessMedia) -> None:
        """Tell the gateway a job cancelled before it ran here has ended (confirmed)."""
        reason = self.cancelled.note(job.job_id) or "cancelled before it started"
        await self.publisher.publish(
            JobCancelled(**job.caused(job_id=job.job_id, attempt=job.attempt), reason=reason)
        )

    async def _screen(self, job: ProcessMedia, delivery: Delivery) -> str | None:
        """The outcome of a job its jobs row says not to run (finished, superseded, or no
        row at all); None to run it."""
        try:
            row = await self.rows.get(job.job_id)
        except TransientError as exc:
            log.warning(
                "job %s: the jobs table is unreachable (%s); running the job unchecked",
                job.job_id,
                exc,
            )
            return None
        if row is None:
            reason = f"job {job.job_id} has no jobs row: a forged or stale command, not run"
            log.error("%s; dead-lettering it", reason)
            await self.redelivery.dead_letter(job, reason, delivery.deliveries, UnknownJob(reason))
            return "dead-lettered"
        if row.status.terminal:
            log.info("job %s is already %s; skipping it", job.job_id, row.status)
            return "skipped"
        if row.attempt > job.attempt:
            log.info("job %s attempt %d is superseded", job.job_id, job.attempt)
            return "skipped"
        return None

    async def _count_crash(self, job: ProcessMedia, delivery: Delivery) -> str:
        count = delivery.deliveries + 1
        reason = "its replica died while running it"
        if count > self.config.max_deliveries:
            return await self._give_up(job, ReplicaDied(reason), delivery.deliveries)
        log.warning("job %s: %s; requeueing as delivery %d", job.job_id, reason, count)
        await self.redelivery.republish(job, count)
        return "retried"

    async def _run(self, job: ProcessMedia, delivery: Delivery) -> str:
        stop = self._start(job)
        screened: list[str] = []

        async def admit() -> bool:
            """The jobs row says run, and no cancel came while it was read."""
            outcome = await self._screen(job, delivery)
            if outcome is None and job.job_id in self.cancelled:
                log.info("job %s was cancelled while being checked; skipping it", job.job_id)
                await self._report_cancelled(job)
                outcome = "skipped"
            if outcome is not None:
                screened.append(outcome)
            return outcome is None

        watchdog = asyncio.create_task(self._watch(job, stop, delivery))
        try:
            event = await self.core.run(job, stop, admit)
            if event is None:
                return screened[0]
        except Interrupted as exc:
            return await self._interrupted(job, delivery, exc)
        except TransientError as exc:
            return await self._retry(job, delivery, exc)
        except asyncio.CancelledError:
            log.warning("job %s: handler cancelled (connection lost); FFmpeg stopped", job.job_id)
            raise
        except Exception as exc:
            # A bug, not the input: the job must still end (JobStarted is out), and a rerun
            # would meet the same bug, so it is dead-lettered for a human, not retried.
            log.exception("job %s: internal error", job.job_id)
            return await self._fail_internal(job, delivery, exc)
        finally:
            watchdog.cancel()
            self._finish(job)
        await self.publisher.publish(event)  # confirmed by the broker before the ack
        outcome = type(event).__name__.removeprefix("Job").lower()
        log.info("job %s: %s", job.job_id, outcome)
        return outcome

    def _start(self, job: ProcessMedia) -> StopSignal:
        """Register ``job`` as running (cancel() finds it from now on)."""
        stop = StopSignal()
        self.running[job.job_id] = stop
        self._idle.clear()
        return stop

    def _finish(self, job: ProcessMedia) -> None:
        self.running.pop(job.job_id, None)
        if not self.running:
            self._idle.set()

    async def _watch(self, job: ProcessMedia, stop: StopSignal, delivery: Delivery) -> None:
        deadline = self.clock() + self.config.max_job_seconds
        while not stop.stopped:
            if delivery.lost():
                stop.stop(StopReason.LOST, "the broker took the delivery back")
                return
            left = deadline - self.clock()
            if left <= 0:
                stop.stop(
                    StopReason.TIMEOUT,
                    f"job exceeded MAX_JOB_SECONDS ({self.config.max_job_seconds:.0f}s)",
                )
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.event.wait(), min(left, self.config.lost_check_seconds))

    async def _interrupted(self, job: ProcessMedia, delivery: Delivery, exc: Interrupted) -> str:
        if exc.reason is StopReason.SHUTDOWN:
            return await self._hand_back(job, delivery, "the replica is shutting down")
        log.warning("job %s: delivery lost; another replica runs it", job.job_id)
        return "lost"

    async def _retry(self, job: ProcessMedia, delivery: Delivery, exc: TransientError) -> str:
        """Republish with the count raised after a backoff, or dead-letter at the limit; a
        shutdown during the wait hands the job back instead (the failure may be the shutdown)."""
        settle = self.config.signal_settle_seconds
        if isinstance(exc, FFmpegStopped) and await self._shutting_down_within(settle):
            return await self._hand_back(job, delivery, f"{exc}, and the replica is shutting down")
        if delivery.deliveries >= self.config.max_deliveries:
            return await self._give_up(job, exc, delivery.deliveries)
        delay = min(self.config.retry_backoff_seconds * 2 ** (delivery.deliveries - 1), 300.0)
        log.warning("job %s: %s; retrying in %.1fs", job.job_id, exc, delay)
        if await self._shutting_down_within(delay):
            return await self._hand_back(job, delivery, "the replica is shutting down")
        await self.redelivery.republish(job, delivery.deliveries + 1)
        return "retried"

    async def _shutting_down_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._draining.wait(), seconds)
        return self._draining.is_set()

    async def _hand_back(self, job: ProcessMedia, delivery: Delivery, why: str) -> str:
        """Back to the queue at the same delivery count: a hand-back is not a failure."""
        log.warning(
            "job %s: %s; handing it back as delivery %d", job.job_id, why, delivery.deliveries
        )
        await self.redelivery.republish(job, delivery.deliveries)
        return "handed-back"

    async def _fail_internal(self, job: ProcessMedia, delivery: Delivery, exc: Exception) -> str:
        reason = f"internal error: {type(exc).__name__}: {exc}"[:1000]
        await self.redelivery.dead_letter(job, reason, delivery.deliveries, exc)
        await self._publish_failed(job, reason, retryable=False)
        return "dead-lettered"

    async def _give_up(self, job: ProcessMedia, cause: Exception, deliveries: int) -> str:
        final = f"gave up after {deliveries} deliveries: {cause}"
        log.error("job %s: %s; dead-lettering it", job.job_id, final)
        await self.redelivery.dead_letter(job, final, deliveries, cause)
        await self._publish_failed(job, final, retryable=True)
        return "dead-lettered"

    async def _publish_failed(self, job: ProcessMedia, reason: str, *, retryable: bool) -> None:
        envelope = job.caused(job_id=job.job_id, attempt=job.attempt)
        await self.publisher.publish(JobFailed(**envelope, reason=reason, retryable=retryable))
