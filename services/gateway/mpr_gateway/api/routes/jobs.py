"""/api/jobs: create, list, read, cancel and retry jobs; the Lambda executor's callback."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from mpr_gateway.adapters.callbacks import callback_event
from mpr_gateway.api.routes._responses import errors
from mpr_gateway.api.schemas import CallbackEnvelope, CallbackResult, JobOut, JobPage
from mpr_gateway.application.job_request import JobRequest
from mpr_gateway.application.jobs import Outcome
from mpr_gateway.application.pages import DEFAULT_PAGE
from mpr_gateway.application.ports import JobFilter
from mpr_gateway.deps import Callbacks, Client, Cursor, Jobs, Limit, require_client
from mpr_gateway.domain.errors import NotFound
from mpr_shared.contracts import JobKind, JobStatus

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=errors(401, 422))
authed = [Depends(require_client)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retries with the same key and body return the same job.",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(404, 409, 413),
)
async def create_job(
    body: JobRequest,
    response: Response,
    jobs: Jobs,
    client: Client,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a job. It is committed with its ProcessMedia command (transactional outbox)."""
    created = await jobs.create(body, idempotency_key=idempotency_key, client=client)
    response.headers["Location"] = f"/api/jobs/{created.job.id}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.of(created.job, jobs.outputs(created.job))


@router.get("", response_model=JobPage, dependencies=authed)
async def list_jobs(
    jobs: Jobs,
    status: Annotated[JobStatus | None, Query()] = None,
    kind: Annotated[JobKind | None, Query()] = None,
    asset_id: Annotated[UUID | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> JobPage:
    """Jobs, newest first, with keyset pagination."""
    filters = JobFilter(status.value if status else None, kind.value if kind else None, asset_id)
    page = await jobs.page(filters, cursor, limit)
    items = [JobOut.of(j, jobs.outputs(j)) for j in page.items]
    return JobPage(items=items, next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, dependencies=authed, responses=errors(404))
async def get_job(job_id: UUID, jobs: Jobs) -> JobOut:
    """Status, progress, timestamps, attempt, error and outputs with download URLs."""
    job = await jobs.get(job_id)
    return JobOut.of(job, jobs.outputs(job))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    dependencies=authed,
    responses=errors(404, 409),
)
async def cancel_job(job_id: UUID, jobs: Jobs) -> JobOut:
    """Queued: cancelled now. Running: the transcoder is told to stop. Finished: 409."""
    job = await jobs.cancel(job_id)
    return JobOut.of(job, jobs.outputs(job))


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    dependencies=authed,
    responses=errors(404, 409),
)
async def retry_job(job_id: UUID, jobs: Jobs, response: Response) -> JobOut:
    """Run a failed or cancelled job again as a new attempt."""
    job = await jobs.retry(job_id)
    response.headers["Location"] = f"/api/jobs/{job.id}"
    return JobOut.of(job, jobs.outputs(job))


@router.post(
    "/{job_id}/callback",
    response_model=CallbackResult,
    responses=errors(404, 413, 503),
)
async def job_callback(
    job_id: UUID, envelope: CallbackEnvelope, request: Request, callbacks: Callbacks, jobs: Jobs
) -> CallbackResult:
    """Lambda executor events, signed with Standard Webhooks (MPR_CALLBACK_SECRET).

    The signature is the credential here, so no API key is needed; the event is then applied
    exactly like the same event from the broker, and published to mpr.events (outbox) when it
    changed the job, as a replica's would be.
    """
    callbacks.verify(await request.body(), request.headers)
    event = callback_event(job_id, envelope.type, envelope.data)
    outcome = await jobs.apply_event(event, republish=True)
    if outcome is Outcome.UNKNOWN_JOB:
        raise NotFound(f"no job {job_id}; the callback URL names a job this gateway never created")
    return CallbackResult(outcome="applied" if outcome is Outcome.APPLIED else "ignored")
