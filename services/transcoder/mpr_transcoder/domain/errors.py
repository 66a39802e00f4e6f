"""What can go wrong with a job, sorted by what the consumer does about it."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class BadInput(Exception):
    """The job can never succeed (undecodable source, impossible trim): JobFailed, no retry."""

    def __init__(
        self, reason: str, error_lines: Iterable[str] = (), log_tail: Iterable[str] = ()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_lines = list(error_lines)
        self.log_tail = list(log_tail)


class TransientError(Exception):
    """S3, network or database trouble that a later delivery may not meet: retried."""


class FFmpegStopped(TransientError):
    """A signal the replica did not send stopped FFmpeg or ffprobe (a shutdown of its whole
    cgroup, the OOM killer): the job was interrupted, the input is not to blame."""


class ReplicaDied(Exception):
    """The replica running a job vanished without an ack (killed, out of memory)."""


class UnknownJob(Exception):
    """A ProcessMedia whose job has no jobs row: forged, or stale (its job was deleted)."""


class StopReason(StrEnum):
    CANCEL = "cancel"  # a CancelJob arrived: clean up and report JobCancelled
    TIMEOUT = "timeout"  # MAX_JOB_SECONDS passed: clean up and report JobFailed
    SHUTDOWN = "shutdown"  # SIGTERM grace ran out: clean up and hand the job back
    LOST = "lost"  # the broker took the delivery back: stop silently, another replica runs it


class Interrupted(Exception):
    """The job was stopped from outside before it finished."""

    def __init__(self, reason: StopReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail
