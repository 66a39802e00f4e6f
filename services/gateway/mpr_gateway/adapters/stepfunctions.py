"""The Step Functions executor: outbox rows with target ``stepfunctions`` start and stop
executions of the transcoder state machine (deploy/aws/) instead of going to RabbitMQ.

A ProcessMedia row starts the execution named after the job and its attempt, with the
ProcessMedia plus ``callback_url`` as input; a CancelJob row stops it. Both are replayed
safely: a name already taken (ExecutionAlreadyExists) means the attempt was started, an
execution that does not exist or no longer runs has nothing to stop. AWS unreachable: the
row stays in the outbox and the relay retries it (with its backoff) until AWS answers. AWS
refusing (throttling, a wrong ARN, a missing permission): retried too, and after
``REFUSALS_BEFORE_FAILING`` refusals of one row the job fails with AWS's error code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from botocore.config import Config
from botocore.exceptions import ClientError

from mpr_gateway.domain.executors import execution_name
from mpr_shared.aws import aws_client
from mpr_shared.contracts import CancelJob, ProcessMedia
from mpr_shared.outbox import PendingMessage
from mpr_shared.settings import CommonSettings

log = logging.getLogger(__name__)

# Refusals of one row (AWS answered with an error) before its job fails; with the relay's
# backoff (1, 2, 4, 8, 15, 15 … s) that is about a minute of throttling or misconfiguration.
REFUSALS_BEFORE_FAILING = 8
# What a stop may find: nothing to stop is success (never started, or already finished).
NOTHING_TO_STOP = frozenset({"ExecutionDoesNotExist"})


def _client_config() -> Config:
    # Fail fast while AWS is unreachable: the row stays in the outbox and the relay retries,
    # instead of one publish holding the relay's batch for boto3's default 60 s timeouts.
    return Config(
        connect_timeout=3, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}
    )


def stepfunctions_client(settings: CommonSettings, endpoint_url: str | None) -> Any:
    """A boto3 Step Functions client with the services' one credential rule."""
    return aws_client("stepfunctions", settings, endpoint_url=endpoint_url, config=_client_config())


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:…:stateMachine:<machine> → arn:…:execution:<machine>:<name> (AWS's ARN format)."""
    prefix, machine = state_machine_arn.rsplit(":stateMachine:", 1)
    return f"{prefix}:execution:{machine}:{name}"


def callback_url(public_url: str, job_id: UUID) -> str:
    return f"{public_url.rstrip('/')}/api/jobs/{job_id}/callback"


class StepFunctionsDispatcher:
    """OutboxPublisher for the Step Functions relay (mpr_shared.outbox.OutboxRelay)."""

    def __init__(
        self,
        client: Any,
        state_machine_arn: str,
        public_url: str,
        *,
        awaits_start: Callable[[UUID, int], Awaitable[bool]],
        refused: Callable[[UUID, int, str], Awaitable[object]],
    ) -> None:
        self._client = client
        self._machine = state_machine_arn
        self._public_url = public_url
        self._awaits_start = awaits_start
        self._refused = refused
        self._refusals: dict[UUID, int] = {}  # per row, in this process

    async def publish(self, row: PendingMessage) -> None:
        """Start or stop the row's execution; returns once AWS accepted (or it was done)."""
        if row.message_type == ProcessMedia.__name__:
            job = ProcessMedia.model_validate_json(row.body)
            await self._dispatch(row.id, job.job_id, job.attempt, self._start(job))
        elif row.message_type == CancelJob.__name__:
            cancel = CancelJob.model_validate_json(row.body)
            await self._dispatch(row.id, cancel.job_id, cancel.attempt or 1, self._stop(cancel))
        else:
            raise ValueError(f"the stepfunctions relay cannot dispatch a {row.message_type}")

    async def _dispatch(
        self, row_id: UUID, job_id: UUID, attempt: int, call: Awaitable[None]
    ) -> None:
        try:
            await call
        except ClientError as exc:
            refusals = self._refusals[row_id] = self._refusals.get(row_id, 0) + 1
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "Unknown"), error.get("Message", "")
            if refusals < REFUSALS_BEFORE_FAILING:
                raise
            reason = f"Step Functions refused the job {refusals} times: {code}: {message}"
            log.error("job %s attempt %s: %s", job_id, attempt, reason)
            await self._refused(job_id, attempt, reason)
        self._refusals.pop(row_id, None)

    async def _start(self, job: ProcessMedia) -> None:
        if not await self._awaits_start(job.job_id, job.attempt):
            # Cancelled (or retried) before AWS was reached: nothing to start.
            log.info("job %s attempt %s no longer queued; not started", job.job_id, job.attempt)
            return
        name = execution_name(job.job_id, job.attempt)
        payload = {
            **job.model_dump(mode="json"),
            "callback_url": callback_url(self._public_url, job.job_id),
        }
        try:
            await asyncio.to_thread(
                self._client.start_execution,
                stateMachineArn=self._machine,
                name=name,
                input=json.dumps(payload),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            log.info("execution %s already exists: a replayed dispatch, nothing started", name)
            return
        log.info("job %s attempt %s: execution %s started", job.job_id, job.attempt, name)

    async def _stop(self, cancel: CancelJob) -> None:
        arn = execution_arn(self._machine, execution_name(cancel.job_id, cancel.attempt or 1))
        try:
            await asyncio.to_thread(
                self._client.stop_execution, executionArn=arn, cause=cancel.reason[:32768]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in NOTHING_TO_STOP:
                raise
            log.info("execution %s does not exist: nothing to stop", arn)
            return
        log.info("job %s: execution %s stopped", cancel.job_id, arn)
