"""The Lambda executor (the storage spec's "Lambda mode"): the same job core as a replica,
invoked by Step Functions (deploy/aws/), reporting to the gateway's job callback.

Event: the ProcessMedia JSON plus ``callback_url`` (the gateway's
``POST /api/jobs/{id}/callback``). Step Functions' Catch invokes the handler again with the
same event plus ``error`` ({"Error", "Cause"}) so the gateway hears about a crashed run.
The handler works under LAMBDA_WORK_DIR (``/tmp`` by default: Lambda's only writable disk),
uploads the outputs, posts JobStarted/JobProgress (best effort) and the final event (must
succeed, or the invocation fails and Step Functions retries), and returns the final event.
A transient failure raises, so the state machine's Retry policy applies.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
from typing import Any

import httpx

from mpr_shared.contracts import Event, JobFailed, ProcessMedia
from mpr_shared.logs import configure_logging
from mpr_transcoder.adapters.callback import CallbackPublisher
from mpr_transcoder.adapters.workspace import new_instance_id
from mpr_transcoder.application.job_core import StopSignal
from mpr_transcoder.bootstrap import bootstrap_lambda
from mpr_transcoder.domain.errors import StopReason
from mpr_transcoder.settings import TranscoderSettings

log = logging.getLogger(__name__)
# Leave this much of the invocation's time to clean up and call back.
TIMEOUT_MARGIN_SECONDS = 20.0
_EXTRA_KEYS = ("callback_url", "error")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entrypoint: run one job, call the gateway back, return the final event."""
    settings = TranscoderSettings()
    configure_logging("transcoder-lambda", settings.log_level)
    final = asyncio.run(run_event(event, context, settings))
    return {"type": type(final).__name__, "data": final.model_dump(mode="json")}


async def run_event(event: dict[str, Any], context: Any, settings: TranscoderSettings) -> Event:
    job = ProcessMedia.model_validate({k: v for k, v in event.items() if k not in _EXTRA_KEYS})
    callback_url = str(event.get("callback_url") or "")
    secret = settings.callback_secret.get_secret_value()
    async with httpx.AsyncClient(timeout=settings.callback_timeout_seconds) as http:
        publisher = CallbackPublisher(http, callback_url, secret)
        if event.get("error"):
            final: Event = _crashed(job, event["error"])
        else:
            final = await _run_job(job, context, settings, publisher)
        await publisher.publish(final)
    log.info("job %s: %s reported", job.job_id, type(final).__name__)
    return final


async def _run_job(
    job: ProcessMedia, context: Any, settings: TranscoderSettings, publisher: CallbackPublisher
) -> Event:
    scratch = settings.lambda_work_dir / f"lambda-{secrets.token_hex(6)}"
    scratch.mkdir(parents=True, exist_ok=True)
    request_id = getattr(context, "aws_request_id", None) or new_instance_id()
    container = bootstrap_lambda(
        settings, publisher=publisher, executor=f"lambda:{request_id}", scratch=scratch
    )
    stop = StopSignal()
    budget = _time_left(context, container.settings)
    timer = asyncio.get_running_loop().call_later(
        budget, stop.stop, StopReason.TIMEOUT, f"job exceeded the time left ({budget:.0f}s)"
    )
    try:
        return await container.core.run(job, stop)
    finally:
        timer.cancel()
        shutil.rmtree(scratch, ignore_errors=True)


def _time_left(context: Any, settings: TranscoderSettings) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return settings.max_job_seconds
    left = float(remaining()) / 1000 - TIMEOUT_MARGIN_SECONDS
    return max(1.0, min(settings.max_job_seconds, left))


def _crashed(job: ProcessMedia, error: Any) -> JobFailed:
    if isinstance(error, dict):
        detail = f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:1000]}"
    else:
        detail = str(error)[:1000]
    return JobFailed(
        **job.caused(job_id=job.job_id, attempt=job.attempt),
        reason=f"the Lambda executor failed: {detail}",
        retryable=True,
    )
