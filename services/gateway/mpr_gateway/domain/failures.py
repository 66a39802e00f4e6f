"""Why a job failed, as a bounded code (the free-text reason stays on the job for humans).

Metrics label failures with these codes: a label per distinct reason text would be unbounded.
The executor's JobFailed carries its reason as text (and ``retryable``); the rules below read
the phrases the transcoder and the Lambda executor write.
"""

from __future__ import annotations

from enum import StrEnum

from mpr_shared.contracts import JobFailed


class FailureReason(StrEnum):
    BAD_INPUT = "bad_input"  # FFmpeg refused the source or the request (the default)
    TIMEOUT = "timeout"  # the job ran past the executor's time limit (MAX_JOB_SECONDS)
    GAVE_UP = "gave_up"  # a transient fault (S3, network) outlasted every delivery
    INTERNAL = "internal"  # the executor itself failed: a bug, a crashed Lambda run


INTERNAL_PREFIXES = ("internal error", "the Lambda executor failed")
TIMEOUT_PREFIXES = ("job exceeded MAX_JOB_SECONDS", "job timed out")


def failure_reason(event: JobFailed) -> FailureReason:
    """The bounded code of a JobFailed; bad input unless its reason says otherwise."""
    if event.reason.startswith(INTERNAL_PREFIXES):
        return FailureReason.INTERNAL
    if event.retryable:  # "gave up after N deliveries: <the transient fault>"
        return FailureReason.GAVE_UP
    if event.reason.startswith(TIMEOUT_PREFIXES):
        return FailureReason.TIMEOUT
    return FailureReason.BAD_INPUT
