"""Job state: a monotonic state machine owned by the gateway.

The gateway owns job state (ARCHITECTURE.md, "Tables and their single writer"): it accepts
jobs, answers every read and applies the transcoder's events, so a transition and its read
model live in one place and the transcoder stays stateless (any number of replicas, or the
Lambda executor). Delivery is at-least-once and events may arrive late, twice or out of
order, so every rule here is monotonic:

- status only moves forward: ``queued → running → completed | failed | cancelled``;
- an event of another attempt than the job's current one is ignored (a retry is a new attempt);
- progress never decreases; a terminal job never changes again (until a user retries it);
- the running figures (fps, speed, ETA) come from the newest progress only: a late
  JobProgress, behind in percent or in FFmpeg's output time, moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from mpr_gateway.domain.errors import Conflict
from mpr_shared.contracts import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobKind,
    JobProgress,
    JobSpec,
    JobStarted,
    JobStatus,
)

RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
# What an executor reports about a job (JobQueued is the gateway's own).
JobEvent = JobStarted | JobProgress | JobCompleted | JobFailed | JobCancelled
JOB_EVENT_TYPES: tuple[type[JobEvent], ...] = (
    JobStarted,
    JobProgress,
    JobCompleted,
    JobFailed,
    JobCancelled,
)


@dataclass(slots=True)
class JobRecord:
    """One row of ``jobs`` as the application sees it (its kind and preset are the spec's)."""

    id: UUID
    source_bucket: str
    source_key: str
    spec: JobSpec
    output_bucket: str
    output_key: str
    created_at: datetime
    updated_at: datetime
    asset_id: UUID | None = None
    priority: int = 0
    status: str = JobStatus.QUEUED.value
    attempt: int = 1
    progress: float = 0.0
    worker: str | None = None
    error: str | None = None
    error_lines: list[str] | None = None
    outputs: list[dict[str, Any]] | None = None
    idempotency_key: str | None = None
    webhook_url: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    fps: float | None = None
    speed: float | None = None
    eta_seconds: float | None = None
    out_time_seconds: float | None = None
    log_tail: list[str] | None = None
    bytes_out: int | None = None
    executor: str = "rabbitmq"  # mpr_gateway.domain.executors.Executor

    @property
    def kind(self) -> JobKind:
        return self.spec.kind

    @property
    def preset(self) -> str | None:
        return self.spec.preset

    @property
    def state(self) -> JobState:
        return JobState(
            JobStatus(self.status), self.attempt, self.progress, self.worker, self.out_time_seconds
        )


@dataclass(frozen=True, slots=True)
class JobState:
    """The part of a job that events change; the guard of a compare-and-set update."""

    status: JobStatus
    attempt: int
    progress: float
    worker: str | None = None
    out_time_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The new state and the columns an event sets; ``changes`` holds only those columns."""

    status: JobStatus
    attempt: int
    progress: float
    changes: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "attempt": self.attempt,
            "progress": self.progress,
            **self.changes,
        }


def decide(state: JobState, event: JobEvent) -> Transition | None:
    """The transition ``event`` causes in a job at ``state``, or None when it changes nothing."""
    if event.attempt != state.attempt:
        return None  # another attempt's event
    if isinstance(event, JobStarted) and state.status is not JobStatus.QUEUED:
        # Consumers apply events concurrently, so JobStarted may land after the job moved on;
        # it still names the worker, which is information, not a step backwards.
        if state.worker is not None:
            return None
        worker = {"worker": event.worker}
        return Transition(state.status, state.attempt, state.progress, worker)
    if state.status.terminal:
        return None  # a finished job never changes again
    start = {"started_at": event.occurred_at} if state.status is JobStatus.QUEUED else {}
    running = JobStatus.RUNNING
    match event:
        case JobStarted():
            changes = {**start, "worker": event.worker}
            return Transition(running, state.attempt, state.progress, changes)
        case JobProgress():
            return _progress(state, event, start)
        case JobCompleted():
            outputs = [o.model_dump(mode="json") for o in event.outputs]
            done = {
                **start,
                "finished_at": event.occurred_at,
                "outputs": outputs,
                "eta_seconds": 0.0,
                "log_tail": list(event.log_tail),
                "bytes_out": sum(o.size_bytes for o in event.outputs),
            }
            return Transition(JobStatus.COMPLETED, state.attempt, 100.0, done)
        case JobFailed():
            failed = {
                **start,
                "finished_at": event.occurred_at,
                "error": event.reason,
                "error_lines": list(event.error_lines),
                "eta_seconds": None,
                "log_tail": list(event.log_tail),
            }
            return Transition(JobStatus.FAILED, state.attempt, state.progress, failed)
        case JobCancelled():
            cancelled = {
                **start,
                "finished_at": event.occurred_at,
                "error": event.reason,
                "eta_seconds": None,
            }
            return Transition(JobStatus.CANCELLED, state.attempt, state.progress, cancelled)


def _progress(state: JobState, event: JobProgress, start: dict[str, Any]) -> Transition | None:
    """Progress only moves forward; its figures are taken from an event that is not behind."""
    percent = max(state.progress, min(event.percent, 100.0))
    out_time, last_out_time = event.out_time_seconds, state.out_time_seconds
    behind = event.percent < state.progress or (
        out_time is not None and last_out_time is not None and out_time < last_out_time
    )
    ahead = percent > state.progress or (
        out_time is not None and (last_out_time is None or out_time > last_out_time)
    )
    running = state.status is JobStatus.RUNNING
    if running and (behind or not ahead):
        return None
    figures = {} if behind else _figures(event)
    return Transition(JobStatus.RUNNING, state.attempt, percent, {**start, **figures})


def _figures(event: JobProgress) -> dict[str, Any]:
    figures = {
        "fps": event.fps,
        "speed": event.speed,
        "eta_seconds": event.eta_seconds,
        "out_time_seconds": event.out_time_seconds,
    }
    # FFmpeg reports N/A (None) before it knows: keep the last figure rather than blank it.
    return {k: v for k, v in figures.items() if v is not None}


def cancel(
    state: JobState, reason: str, now: datetime, *, stops_at_once: bool = False
) -> Transition | None:
    """A user's cancel: a queued job is cancelled at once (Transition); a running one is left
    running until the transcoder confirms (None), unless its executor stops at once and
    confirms nothing (``stops_at_once``: Step Functions); a finished one cannot be cancelled."""
    if state.status.terminal:
        raise Conflict(
            f"job is already {state.status.value}; only queued or running jobs can be cancelled"
            + (" (retry the job to run it again)" if state.status in RETRYABLE else ""),
            details={"status": state.status.value},
        )
    if state.status is JobStatus.RUNNING and not stops_at_once:
        return None
    changes = {"finished_at": now, "error": reason, "eta_seconds": None}
    return Transition(JobStatus.CANCELLED, state.attempt, state.progress, changes)


def retry(state: JobState) -> Transition:
    """A user's retry of a failed or cancelled job: a new attempt, queued from scratch."""
    if state.status not in RETRYABLE:
        raise Conflict(
            f"job is {state.status.value}; only failed or cancelled jobs can be retried",
            details={"status": state.status.value},
        )
    cleared = dict.fromkeys(
        (
            "worker",
            "error",
            "error_lines",
            "outputs",
            "started_at",
            "finished_at",
            "fps",
            "speed",
            "eta_seconds",
            "out_time_seconds",
            "log_tail",
            "bytes_out",
        )
    )
    return Transition(JobStatus.QUEUED, state.attempt + 1, 0.0, cleared)
