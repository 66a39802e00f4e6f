"""Where a job runs: a transcoder replica over RabbitMQ, or AWS Lambda through Step Functions.

The deployment picks the default (EXECUTOR) and which a job may ask for (EXECUTORS_ALLOWED);
the Lambda executor takes only sources that finish inside Lambda's 15 minutes
(deploy/aws/README.md, "Long jobs"), so a longer or unprobed source is refused at submission.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Self
from uuid import UUID

from mpr_gateway.domain.errors import InvalidRequest

# Step Functions execution names: 1-80 characters of letters, digits, '-' and '_'.
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
MAX_EXECUTION_NAME = 80


class Executor(StrEnum):
    RABBITMQ = "rabbitmq"
    STEPFUNCTIONS = "stepfunctions"

    @property
    def stops_at_once(self) -> bool:
        """A stopped Step Functions execution reports nothing, so cancel needs no confirmation."""
        return self is Executor.STEPFUNCTIONS


@dataclass(frozen=True, slots=True)
class ExecutorPolicy:
    """The deployment's executors: the default, the allowed ones and the Lambda's budget."""

    default: Executor = Executor.RABBITMQ
    allowed: frozenset[Executor] = frozenset({Executor.RABBITMQ})
    lambda_max_source_seconds: float = 300.0

    @classmethod
    def of(cls, default: Executor, allowed: Iterable[Executor], max_seconds: float) -> Self:
        return cls(default, frozenset({default, *allowed}), max_seconds)

    def choose(self, requested: Executor | None, duration: float | None) -> Executor:
        """The executor of a new job; InvalidRequest when it is not allowed or cannot finish."""
        executor = requested or self.default
        if executor not in self.allowed:
            names = ", ".join(sorted(self.allowed))
            raise InvalidRequest(
                f"executor {executor.value!r} is not allowed on this deployment; allowed: {names}",
                details={"field": "executor", "allowed": sorted(self.allowed)},
            )
        if executor is Executor.STEPFUNCTIONS:
            self._check_fits_lambda(duration)
        return executor

    def _check_fits_lambda(self, duration: float | None) -> None:
        limit = self.lambda_max_source_seconds
        others = sorted(self.allowed - {Executor.STEPFUNCTIONS})
        hint = f"; use executor {others[0]}" if others else ""
        if duration is None:
            why = "its duration is unknown (register and probe the asset first)"
        elif duration > limit:
            why = f"the source lasts {duration:.0f} s"
        else:
            return
        raise InvalidRequest(
            f"{why}; the stepfunctions executor takes sources up to {limit:.0f} s "
            f"(LAMBDA_MAX_SOURCE_SECONDS, within Lambda's 15-minute limit){hint}",
            details={
                "field": "executor",
                "duration_seconds": duration,
                "lambda_max_source_seconds": limit,
                "allowed": sorted(self.allowed),
            },
        )


def execution_name(job_id: UUID, attempt: int) -> str:
    """One Step Functions execution per job attempt: a replayed start finds it taken."""
    return f"{job_id}-attempt-{attempt}"
