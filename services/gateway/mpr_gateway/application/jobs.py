"""Job use cases shared by REST, GraphQL and the broker subscribers: create, read, list, cancel,
retry, and apply the executors' events.

Never accept a job that is then lost: creating a job writes the row and its ProcessMedia and
JobQueued messages to ``gateway_outbox`` in ONE transaction; the outbox relay publishes them
with confirms afterwards (retrying while RabbitMQ is down), so an accepted job always runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from mpr_gateway.application.job_request import JobRequest
from mpr_gateway.application.pages import DEFAULT_PAGE, Page
from mpr_gateway.application.ports import (
    DuplicateIdempotencyKey,
    JobFilter,
    Presigner,
    SourceObjects,
    Telemetry,
    UnitOfWork,
    UnitOfWorkFactory,
)
from mpr_gateway.domain import jobs as machine
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.cursor import decode_cursor, encode_cursor
from mpr_gateway.domain.errors import Conflict, InvalidRequest, NotFound
from mpr_gateway.domain.executors import Executor, ExecutorPolicy
from mpr_gateway.domain.failures import failure_reason
from mpr_gateway.domain.jobs import JobEvent, JobRecord, Transition
from mpr_gateway.domain.keys import check_key
from mpr_gateway.domain.planning import JobPlan, Source, plan_job
from mpr_shared.contracts import (
    CancelJob,
    CreateJob,
    JobCancelled,
    JobFailed,
    JobQueued,
    JobSpec,
    Message,
    ProbeStatus,
    ProcessMedia,
)
from mpr_shared.media import MEDIA_EXTENSIONS, MediaType, media_type

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 8  # concurrent writers of one job are rare; a few re-reads settle them


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OutputView:
    key: str
    bucket: str
    size_bytes: int
    download_url: str
    probe: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Created:
    job: JobRecord
    replayed: bool = False


class Outcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    UNKNOWN_JOB = "unknown_job"


@dataclass(frozen=True, slots=True)
class NewJob:
    """What a job is made of before it has an id: its source and what to make from it."""

    source: Source
    spec: JobSpec
    output_key: str | None
    priority: int
    idempotency_key: str | None
    webhook_url: str | None = None
    executor: Executor = Executor.RABBITMQ


@dataclass(frozen=True, slots=True)
class JobService:
    """Job use cases; every dependency is a port, wired in ``mpr_gateway.bootstrap``."""

    uow: UnitOfWorkFactory
    bucket_in: str
    bucket_out: str
    presigner: Presigner
    sources: SourceObjects
    wake_relay: Callable[[], None]
    telemetry: Telemetry
    executors: ExecutorPolicy = field(default_factory=ExecutorPolicy)

    # ------------------------------------------------------------------ reads

    async def get(self, job_id: UUID) -> JobRecord:
        async with self.uow() as uow:
            return await _require(uow, job_id)

    async def page(
        self, filters: JobFilter, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[JobRecord]:
        after = None
        if cursor:
            created, job_id = decode_cursor("jobs", cursor, 2)
            after = (_parse_time(created), _parse_uuid(job_id))
        async with self.uow() as uow:
            rows = await uow.jobs.page(filters, after, limit + 1)
        items = rows[:limit]
        if len(rows) <= limit or not items:
            return Page(items, None)
        last = items[-1]
        return Page(items, encode_cursor("jobs", [last.created_at.isoformat(), str(last.id)]))

    async def for_assets(
        self, asset_ids: Sequence[UUID], limit: int = 100
    ) -> dict[UUID, list[JobRecord]]:
        """Each asset's newest jobs, batched (one query for any number of assets)."""
        async with self.uow() as uow:
            rows = await uow.jobs.for_assets(asset_ids, limit)
        grouped: dict[UUID, list[JobRecord]] = {i: [] for i in asset_ids}
        for job in rows:
            if job.asset_id is not None:
                grouped.setdefault(job.asset_id, []).append(job)
        return grouped

    def outputs(self, job: JobRecord) -> list[OutputView]:
        """The job's outputs with presigned download URLs (signed locally, no network)."""
        views = []
        for output in job.outputs or ():
            bucket = output.get("bucket") or job.output_bucket
            url = self.presigner.url(bucket, output["key"])
            size = int(output.get("size_bytes") or 0)
            views.append(OutputView(output["key"], bucket, size, url, output.get("probe")))
        return views

    # ------------------------------------------------------------------ writes

    async def create(
        self, request: JobRequest, *, idempotency_key: str | None = None, client: str = "api"
    ) -> Created:
        """Validate, then commit the job with its ProcessMedia and JobQueued messages."""
        scoped = f"api:{client}:{idempotency_key}" if idempotency_key else None
        async with self.uow() as uow:
            source = await self._source(uow, self.bucket_in, request.source_key, request.asset_id)
            executor = self.executors.choose(request.executor, source.duration)
            if scoped and (existing := await uow.jobs.by_idempotency_key(scoped)):
                return _replay(existing, source, request, executor)
            new = NewJob(
                source,
                request.spec(),
                request.output_key,
                request.priority,
                scoped,
                request.webhook,
                executor,
            )
            job = self._new_job(new)
            if await self._commit_new(uow, job, source.duration, origin="api"):
                return Created(job)
        return _replay(await self._twin(scoped), source, request, executor)

    async def create_from_command(self, command: CreateJob) -> Created:
        """The catalog's auto-job rule; the same idempotency key never creates two jobs."""
        scoped = f"cmd:{command.idempotency_key}"
        async with self.uow() as uow:
            if existing := await uow.jobs.by_idempotency_key(scoped):
                return Created(existing, replayed=True)
            source = await self._source(
                uow, command.source_bucket, command.source_key, command.asset_id
            )
            executor = self.executors.choose(None, source.duration)
            new = NewJob(source, command.spec, None, command.priority, scoped, executor=executor)
            job = self._new_job(new)
            if await self._commit_new(uow, job, source.duration, origin="command", cause=command):
                return Created(job)
        return Created(await self._twin(scoped), replayed=True)

    async def cancel(self, job_id: UUID, reason: str = "cancelled by user") -> JobRecord:
        """Queued → cancelled at once; running → CancelJob to the transcoders (or, on Step
        Functions, StopExecution and cancelled at once: a stopped execution reports
        nothing); else 409."""
        for _ in range(CAS_ATTEMPTS):
            async with self.uow() as uow:
                job = await _require(uow, job_id)
                now = utcnow()
                executor = Executor(job.executor)
                transition = machine.cancel(
                    job.state, reason, now, stops_at_once=executor.stops_at_once
                )
                if transition and not await uow.jobs.transition(job_id, job.state, transition, now):
                    continue  # an event moved the job meanwhile; decide again
                command, *events = _cancel_messages(job, reason, cancelled=transition is not None)
                uow.outbox.add(command, via=executor)
                uow.outbox.add(*events)
                await uow.commit()
            self.wake_relay()
            if transition is None:
                return job
            cancelled = _applied(job, transition, now)
            self.telemetry.job_finished(cancelled, None)
            return cancelled
        raise Conflict("the job kept changing while cancelling; retry the request")

    async def retry(self, job_id: UUID) -> JobRecord:
        """A failed or cancelled job runs again as a new attempt (attempt + 1)."""
        for _ in range(CAS_ATTEMPTS):
            async with self.uow() as uow:
                job = await _require(uow, job_id)
                transition = machine.retry(job.state)
                asset = await uow.assets.get(job.asset_id) if job.asset_id else None
                now = utcnow()
                if not await uow.jobs.transition(job_id, job.state, transition, now):
                    continue
                retried = _applied(job, transition, now)
                _queue(uow, retried, asset.duration_seconds if asset else None)
                await uow.commit()
            self.wake_relay()
            return retried
        raise Conflict("the job kept changing while retrying; retry the request")

    async def apply_event(self, event: JobEvent, *, republish: bool = False) -> Outcome:
        """Apply an executor's event (broker or Lambda callback); replays change nothing.

        ``republish``: an event that no broker carried (the Lambda's callback, a refused
        dispatch) also goes to mpr.events through the outbox, in the transaction that applies
        it and only when it changed the job, so every listener hears both executors alike.
        The gateway's own subscriber then receives it back and ignores it (the job is
        already there: ``decide`` returns None for an applied event).
        """
        for _ in range(CAS_ATTEMPTS):
            outcome = await self._apply_once(event, republish)
            if outcome is not None:
                self.telemetry.event_applied(type(event).__name__, outcome.value)
                return outcome
        raise RuntimeError(f"job {event.job_id}: state kept changing while applying {event.id}")

    # ------------------------------------------------------------------ helpers

    async def dispatch_refused(self, job_id: UUID, attempt: int, reason: str) -> Outcome:
        """The executor refused to start the attempt for good: the job fails with AWS's
        reason (retryable: a user may retry it once the deployment is fixed)."""
        failed = JobFailed(
            job_id=job_id,
            attempt=attempt,
            reason=reason,
            retryable=True,
            correlation_id=str(job_id),
        )
        return await self.apply_event(failed, republish=True)

    async def _apply_once(self, event: JobEvent, republish: bool = False) -> Outcome | None:
        """The outcome, or None when another writer moved the job after it was read."""
        async with self.uow() as uow:
            job = await uow.jobs.get(event.job_id)
            if job is None:
                return Outcome.UNKNOWN_JOB
            transition = machine.decide(job.state, event)
            if transition is None:
                return Outcome.IGNORED
            now = utcnow()
            if not await uow.jobs.transition(job.id, job.state, transition, now):
                return None
            if republish:
                uow.outbox.add(event)
            await uow.commit()
        if republish:
            self.wake_relay()
        if transition.status.terminal and not job.state.status.terminal:
            failure = failure_reason(event) if isinstance(event, JobFailed) else None
            self.telemetry.job_finished(_applied(job, transition, now), failure)
        return Outcome.APPLIED

    async def _commit_new(
        self,
        uow: UnitOfWork,
        job: JobRecord,
        duration: float | None,
        *,
        origin: str,
        cause: CreateJob | None = None,
    ) -> bool:
        """Commit the job with its messages; False when a concurrent twin took its key."""
        uow.jobs.add(job)
        _queue(uow, job, duration, cause)
        try:
            await uow.commit()
        except DuplicateIdempotencyKey:
            return False
        self.wake_relay()
        self.telemetry.job_created(job, origin)
        return True

    async def _twin(self, idempotency_key: str | None) -> JobRecord:
        """The job a concurrent request committed first with the same idempotency key."""
        existing = None
        if idempotency_key is not None:
            # Read after the failed transaction is closed: no unit of work reads while it
            # holds a write connection, so a pool without overflow cannot deadlock.
            async with self.uow() as uow:
                existing = await uow.jobs.by_idempotency_key(idempotency_key)
        if existing is None:
            raise Conflict("idempotency key collided; retry the request")
        return existing

    async def _source(
        self, uow: UnitOfWork, bucket: str, key: str | None, asset_id: UUID | None
    ) -> Source:
        """The registered asset (by id or key), or an unregistered object that exists in S3."""
        if key is not None:
            _check_source_key(key)
        if asset_id is not None:
            return _registered(await _asset_by_id(uow, asset_id, key))
        if key is None:
            raise InvalidRequest("give the source as 'source_key' (an S3 key) or 'asset_id'")
        asset = await _asset_by_key(uow, bucket, key)
        if asset is not None:
            return _registered(asset)
        if not await self.sources.exists(bucket, key):
            raise NotFound(
                f"no object {key!r} in bucket {bucket!r}; upload it first, or list the "
                "registered assets"
            )
        return Source(bucket, key, _media_type(key))

    def _new_job(self, new: NewJob) -> JobRecord:
        job_id = uuid4()
        plan = plan_job(job_id, new.source, new.spec, new.output_key)
        now = utcnow()
        return JobRecord(
            id=job_id,
            asset_id=new.source.asset_id,
            source_bucket=new.source.bucket,
            source_key=new.source.key,
            spec=plan.spec,
            output_bucket=self.bucket_out,
            output_key=plan.output_key,
            priority=new.priority,
            idempotency_key=new.idempotency_key,
            webhook_url=new.webhook_url,
            executor=new.executor.value,
            created_at=now,
            updated_at=now,
        )


async def _require(uow: UnitOfWork, job_id: UUID) -> JobRecord:
    job = await uow.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}; list the jobs to find it")
    return job


def _check_source_key(key: str) -> None:
    check_key(key, "source_key")
    if media_type(key) is None:
        raise InvalidRequest(
            f"{key!r} is not a supported media file; supported extensions: "
            + ", ".join(sorted(MEDIA_EXTENSIONS)),
            details={"supported_extensions": sorted(MEDIA_EXTENSIONS)},
        )


async def _asset_by_id(uow: UnitOfWork, asset_id: UUID, key: str | None) -> AssetRecord:
    asset = await uow.assets.get(asset_id)
    if asset is None or not asset.active:
        raise NotFound(f"no asset {asset_id}; list the assets to find it")
    if key is not None and key != asset.key:
        raise InvalidRequest(
            f"asset {asset_id} is {asset.key!r}, not {key!r}; give one or the other"
        )
    return asset


async def _asset_by_key(uow: UnitOfWork, bucket: str, key: str) -> AssetRecord | None:
    asset = await uow.assets.by_key(bucket, key)
    if asset is not None and not asset.active:
        raise NotFound(f"{key!r} was removed from bucket {bucket!r}")
    return asset


def _registered(asset: AssetRecord) -> Source:
    """A registered asset as a job's source; one the catalog could not probe is refused."""
    check_key(asset.key, "the asset's key")  # registered before the key rules grew
    if asset.probe_status == ProbeStatus.FAILED:
        reason = asset.probe_error or "no reason recorded"
        raise InvalidRequest(
            f"{asset.key!r} cannot be processed: the catalog could not read it as media "
            f"({reason}); upload a playable file under that key",
            details={"asset_id": str(asset.id), "probe_error": asset.probe_error},
        )
    return Source(asset.bucket, asset.key, _media_type(asset.key), asset.id, asset.duration_seconds)


def _media_type(key: str) -> MediaType:
    kind = media_type(key)
    if kind is None:
        raise InvalidRequest(f"{key!r} is not a supported media file")
    return kind


def _replay(
    existing: JobRecord, source: Source, request: JobRequest, executor: Executor
) -> Created:
    """Same key and same request: the same job. Same key, another request: 409."""
    try:
        plan: JobPlan | None = plan_job(existing.id, source, request.spec(), request.output_key)
    except InvalidRequest:
        plan = None
    same = (
        plan is not None
        and (existing.source_bucket, existing.source_key) == (source.bucket, source.key)
        and (existing.spec, existing.output_key) == (plan.spec, plan.output_key)
        and existing.priority == request.priority
        and existing.webhook_url == request.webhook
        and existing.executor == executor
    )
    if not same:
        raise Conflict(
            "this Idempotency-Key was already used for a different request (job "
            f"{existing.id}); send the same body to get that job again, or use a new key",
            details={"job_id": str(existing.id)},
        )
    return Created(existing, replayed=True)


def _queue(
    uow: UnitOfWork, job: JobRecord, duration: float | None, cause: Message | None = None
) -> None:
    """The job's ProcessMedia to its executor, its JobQueued to mpr.events (one transaction)."""
    process, queued = _queued(job, duration, cause)
    uow.outbox.add(process, via=Executor(job.executor))
    uow.outbox.add(queued)


def _queued(job: JobRecord, duration: float | None, cause: Message | None = None) -> list[Message]:
    """ProcessMedia (at the job's priority) and JobQueued, for the job's transaction."""
    envelope = cause.caused() if cause is not None else {}
    envelope["correlation_id"] = str(job.id)
    process = ProcessMedia(
        **envelope,
        job_id=job.id,
        attempt=job.attempt,
        asset_id=job.asset_id,
        source_bucket=job.source_bucket,
        source_key=job.source_key,
        source_duration=duration,
        spec=job.spec,
        output_bucket=job.output_bucket,
        output_key=job.output_key,
        priority=job.priority,
    )
    queued = JobQueued(
        **process.caused(),
        job_id=job.id,
        attempt=job.attempt,
        asset_id=job.asset_id,
        source_key=job.source_key,
        spec=job.spec,
        priority=job.priority,
    )
    return [process, queued]


def _cancel_messages(job: JobRecord, reason: str, *, cancelled: bool) -> list[Message]:
    """CancelJob for the transcoders; JobCancelled too when the job was cancelled at once."""
    command = CancelJob(
        job_id=job.id, attempt=job.attempt, reason=reason, correlation_id=str(job.id)
    )
    if not cancelled:
        return [command]
    return [
        command,
        JobCancelled(**command.caused(job_id=job.id, attempt=job.attempt, reason=reason)),
    ]


def _applied(job: JobRecord, transition: Transition, now: datetime) -> JobRecord:
    """A copy of ``job`` with ``transition`` applied (what the CAS update wrote)."""
    return replace(job, **transition.columns(), updated_at=now)


def _parse_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidRequest("cursor is corrupt; omit it to start from the first page") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_uuid(value: Any) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidRequest("cursor is corrupt; omit it to start from the first page") from None
