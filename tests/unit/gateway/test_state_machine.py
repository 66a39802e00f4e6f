"""The job state machine: monotonic, attempt-aware, progress never decreases."""

from __future__ import annotations

from uuid import uuid4

import pytest

from mpr_gateway.domain.errors import Conflict
from mpr_gateway.domain.jobs import JobState, cancel, decide, retry
from mpr_shared.contracts import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobQueued,
    JobSpec,
    JobStarted,
    JobStatus,
    OutputFile,
)

JOB = uuid4()
Q, R = JobStatus.QUEUED, JobStatus.RUNNING


def state(status=Q, attempt=1, progress=0.0, worker=None, out_time=None) -> JobState:
    return JobState(status, attempt, progress, worker, out_time)


def started(attempt=1):
    return JobStarted(job_id=JOB, attempt=attempt, worker="w1")


def progress(pct, attempt=1):
    return JobProgress(job_id=JOB, attempt=attempt, percent=pct)


def completed(attempt=1):
    out = OutputFile(key="a/b.mp4", bucket="out", size_bytes=10)
    return JobCompleted(job_id=JOB, attempt=attempt, outputs=[out])


def test_started_moves_queued_to_running_and_records_worker():
    t = decide(state(), started())
    assert t.status is R and t.changes["worker"] == "w1" and "started_at" in t.changes


def test_started_twice_changes_nothing():
    assert decide(state(R, worker="w1"), started()) is None


@pytest.mark.parametrize("status", [R, JobStatus.COMPLETED, JobStatus.FAILED])
def test_late_started_only_fills_in_the_worker(status):
    t = decide(state(status, progress=40.0), started())
    assert (t.status, t.progress, t.changes) == (status, 40.0, {"worker": "w1"})


def test_progress_never_decreases():
    assert decide(state(R, progress=50.0), progress(40.0)) is None
    assert decide(state(R, progress=50.0), progress(50.0)) is None
    assert decide(state(R, progress=50.0), progress(60.0)).progress == 60.0


def test_progress_before_started_still_moves_forward():
    t = decide(state(Q), progress(10.0))
    assert t.status is R and t.progress == 10.0 and "started_at" in t.changes


def test_completed_sets_outputs_and_full_progress():
    t = decide(state(R, progress=70.0), completed())
    assert t.status is JobStatus.COMPLETED and t.progress == 100.0
    assert t.changes["outputs"][0]["key"] == "a/b.mp4"


@pytest.mark.parametrize("terminal", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
@pytest.mark.parametrize(
    "event",
    [
        started(),
        progress(99.0),
        completed(),
        JobFailed(job_id=JOB, reason="x"),
        JobCancelled(job_id=JOB),
    ],
)
def test_terminal_jobs_never_move(terminal, event):
    assert decide(state(terminal, progress=5.0, worker="w0"), event) is None


def test_events_of_an_older_attempt_are_ignored():
    assert decide(state(Q, attempt=2), started(attempt=1)) is None
    assert decide(state(R, attempt=2), completed(attempt=1)) is None
    assert decide(state(R, attempt=2), progress(90.0, attempt=1)) is None


def test_events_of_an_unknown_newer_attempt_are_ignored():
    assert decide(state(Q, attempt=1), started(attempt=2)) is None


def test_out_of_order_replay_after_completion_is_ignored():
    done = decide(state(R, progress=40.0), completed())
    after = JobState(done.status, done.attempt, done.progress, "w1")
    for late in (started(), progress(50.0)):
        assert decide(after, late) is None


def test_failed_keeps_progress_and_error_lines():
    t = decide(state(R, progress=33.0), JobFailed(job_id=JOB, reason="boom", error_lines=["e"]))
    assert (t.status, t.progress) == (JobStatus.FAILED, 33.0)
    assert t.changes["error"] == "boom" and t.changes["error_lines"] == ["e"]


def test_own_jobqueued_event_changes_nothing():
    spec = JobSpec(kind="audio", preset="audio-aac")
    assert decide(state(), JobQueued(job_id=JOB, source_key="a.mp4", spec=spec)) is None


def test_cancel_queued_is_immediate_running_waits_terminal_conflicts():
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    t = cancel(state(Q), "stop", now)
    assert t.status is JobStatus.CANCELLED and t.changes["finished_at"] == now
    assert cancel(state(R), "stop", now) is None
    with pytest.raises(Conflict, match="already completed"):
        cancel(state(JobStatus.COMPLETED), "stop", now)


def test_retry_starts_a_new_attempt_from_scratch():
    t = retry(state(JobStatus.FAILED, attempt=2, progress=80.0))
    assert (t.status, t.attempt, t.progress) == (Q, 3, 0.0)
    assert t.changes["error"] is None and t.changes["outputs"] is None
    for status in (Q, R, JobStatus.COMPLETED):
        with pytest.raises(Conflict):
            retry(state(status))


def figures(pct, out_time, fps=24.0, speed=2.0, eta=5.0):
    return JobProgress(
        job_id=JOB,
        percent=pct,
        out_time_seconds=out_time,
        fps=fps,
        speed=speed,
        eta_seconds=eta,
    )


def test_progress_records_fps_speed_eta_and_output_time():
    t = decide(state(R, progress=10.0, out_time=1.0), figures(30.0, 3.0))
    assert t.progress == 30.0
    assert t.changes == {"fps": 24.0, "speed": 2.0, "eta_seconds": 5.0, "out_time_seconds": 3.0}


def test_progress_at_the_same_percent_but_later_output_time_updates_the_figures():
    # Without a known duration the percent stays put while FFmpeg moves on.
    t = decide(state(R, progress=0.0, out_time=1.0), figures(0.0, 2.0, fps=30.0, eta=None))
    assert t.progress == 0.0 and t.changes["fps"] == 30.0 and t.changes["out_time_seconds"] == 2.0
    assert "eta_seconds" not in t.changes  # N/A keeps the last figure


def test_late_progress_changes_no_figure():
    assert decide(state(R, progress=50.0, out_time=5.0), figures(40.0, 4.0)) is None
    assert decide(state(R, progress=50.0, out_time=5.0), figures(50.0, 4.0)) is None
    assert decide(state(R, progress=50.0, out_time=5.0), figures(50.0, 5.0)) is None
    # A late one that still starts a queued job starts it without its stale figures.
    t = decide(state(Q, progress=50.0, out_time=5.0), figures(40.0, 4.0))
    assert t.status is R and set(t.changes) == {"started_at"}


def test_completed_and_failed_carry_the_log_tail():
    out = OutputFile(key="a/b.mp4", bucket="out", size_bytes=10)
    done = JobCompleted(job_id=JOB, outputs=[out, out], log_tail=["video:1kB"])
    t = decide(state(R, progress=70.0), done)
    assert t.changes["log_tail"] == ["video:1kB"] and t.changes["bytes_out"] == 20
    assert t.changes["eta_seconds"] == 0.0
    failed = JobFailed(job_id=JOB, reason="x", error_lines=["e"], log_tail=["l1", "e"])
    t = decide(state(R), failed)
    assert t.changes["log_tail"] == ["l1", "e"] and t.changes["eta_seconds"] is None


def test_retry_clears_the_figures_and_the_log_tail():
    t = retry(state(JobStatus.FAILED, progress=80.0, out_time=8.0))
    cleared = ("fps", "speed", "eta_seconds", "out_time_seconds", "log_tail", "bytes_out")
    assert all(t.changes[name] is None for name in cleared)
