"""Job use cases shared by REST, GraphQL and the broker consumers: create, read, list, cancel,
retry, and apply the transcoder's events.

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
from typing import Any, Generic, Protocol, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from mpr_gateway.application.ports import (
    DuplicateIdempotencyKey,
    JobFilter,
    Presigner,
    SourceObjects,
    UnitOfWork,
    UnitOfWorkFactory,
)
from mpr_gateway.domain import jobs as machine
from mpr_gateway.domain.cursor import decode_cursor, encode_cursor
from mpr_gateway.domain.errors import Conflict, InvalidRequest, NotFound
from mpr_gateway.domain.jobs import JobRecord, JobState, Transition
from mpr_gateway.domain.keys import check_key
from mpr_gateway.domain.planning import JobOptions, JobPlan, Source, plan_job
from mpr_shared.contracts import (
    CancelJob,
    CreateJob,
    Event,
    JobCancelled,
    JobKind,
    JobQueued,
    JobSpec,
    JobStatus,
    ProcessMedia,
    TrimMode,
)
from mpr_shared.media import MEDIA_EXTENSIONS, media_type

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
CAS_ATTEMPTS = 8  # concurrent writers of one job are rare; a few re-reads settle them


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobRequest(BaseModel):
    """A new job: the source (source_key or asset_id) and what to make from it."""

    model_config = ConfigDict(extra="forbid")

    source_key: str | None = Field(
        None, description="S3 key in the input bucket (or give asset_id).", examples=["a.mp4"]
    )
    asset_id: UUID | None = Field(None, description="A registered asset (or give source_key).")
    kind: JobKind = Field(description="transcode | trim | audio | thumbnail | hls")
    preset: str | None = Field(
        None, max_length=64, description="Preset name (GET /api/presets); kind's default if unset."
    )
    output_key: str | None = Field(
        None, description="Output key; default <source stem>/<job id>/<preset or kind><ext>."
    )
    start: float | None = Field(None, ge=0, allow_inf_nan=False, description="Trim start (s).")
    end: float | None = Field(None, gt=0, allow_inf_nan=False, description="Trim end (s).")
    mode: TrimMode | None = Field(None, description="Trim: copy (keyframes) or accurate.")
    at: float | None = Field(None, ge=0, allow_inf_nan=False, description="Thumbnail time (s).")
    count: int | None = Field(None, ge=1, le=100, description="Thumbnail sprite frame count.")
    priority: int = Field(0, ge=0, le=9, description="0 (lowest) to 9 (highest).")
    webhook_url: HttpUrl | None = Field(
        None, description="Called by the notifier when the job finishes."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.source_key is None and self.asset_id is None:
            raise ValueError("give the source as 'source_key' (an S3 key) or 'asset_id'")
        if self.webhook_url is not None and len(str(self.webhook_url)) > 2048:
            raise ValueError("webhook_url is longer than 2048 characters")
        return self

    def options(self) -> JobOptions:
        return JobOptions(
            kind=self.kind,
            preset=self.preset,
            output_key=self.output_key,
            start=self.start,
            end=self.end,
            mode=self.mode,
            at=self.at,
            count=self.count,
        )


T = TypeVar("T")


def parse_job_request(data: dict[str, Any]) -> JobRequest:
    """A JobRequest from plain data (GraphQL input); InvalidRequest lists every bad field."""
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "input",
                "message": err["msg"].removeprefix("Value error, "),
            }
            for err in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidRequest(f"invalid job: {summary}", details=problems) from None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


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


class Telemetry(Protocol):
    def job_created(self, kind: str, origin: str) -> None: ...
    def event_applied(self, event_type: str, outcome: str) -> None: ...


class _NoTelemetry:
    def job_created(self, kind: str, origin: str) -> None:
        pass

    def event_applied(self, event_type: str, outcome: str) -> None:
        pass


@dataclass
class JobService:
    """Job use cases; every dependency is a port, wired in ``mpr_gateway.app``."""

    uow: UnitOfWorkFactory
    bucket_in: str
    bucket_out: str
    presigner: Presigner
    sources: SourceObjects
    wake_relay: Callable[[], None] = lambda: None
    telemetry: Telemetry = field(default_factory=_NoTelemetry)

    # ------------------------------------------------------------------ reads

    async def get(self, job_id: UUID) -> JobRecord:
        async with self.uow() as uow:
            job = await uow.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}; GET /api/jobs lists jobs")
        return job

    async def page(
        self, filters: JobFilter, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[JobRecord]:
        after = None
        if cursor:
            created, job_id = decode_cursor("jobs", cursor, 2)
            after = (_parse_time(created), _parse_uuid(job_id))
        async with self.uow() as uow:
            rows = await uow.jobs.page(filters, after, limit + 1)
        items, more = rows[:limit], len(rows) > limit
        last = items[-1] if items else None
        token = (
            encode_cursor("jobs", [last.created_at.isoformat(), str(last.id)])
            if more and last
            else None
        )
        return Page(items, token)

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
        return [
            OutputView(
                key=o["key"],
                bucket=o.get("bucket") or job.output_bucket,
                size_bytes=int(o.get("size_bytes") or 0),
                download_url=self.presigner.url(o.get("bucket") or job.output_bucket, o["key"]),
                probe=o.get("probe"),
            )
            for o in job.outputs or ()
        ]

    # ------------------------------------------------------------------ writes

    async def create(
        self,
        request: JobRequest,
        *,
        idempotency_key: str | None = None,
        client: str = "api",
    ) -> Created:
        """Validate, then commit the job with its ProcessMedia and JobQueued messages."""
        scoped = f"api:{client}:{idempotency_key}" if idempotency_key else None
        webhook = str(request.webhook_url) if request.webhook_url else None
        async with self.uow() as uow:
            source = await self._source(uow, self.bucket_in, request.source_key, request.asset_id)
            if scoped and (existing := await uow.jobs.by_idempotency_key(scoped)):
                return self._replay(existing, source, request, webhook)
            job_id = uuid4()
            plan = plan_job(job_id, source, request.options())
            job = self._new_job(job_id, source, plan, request.priority, scoped, webhook)
            uow.jobs.add(job)
            self._queue(uow, job, source.duration)
            try:
                await uow.commit()
            except DuplicateIdempotencyKey:
                pass  # a concurrent twin won; answer with its job below
            else:
                self.wake_relay()
                self.telemetry.job_created(job.kind, "api")
                return Created(job)
        async with self.uow() as uow:
            existing = await uow.jobs.by_idempotency_key(scoped or "")
        if existing is None:  # pragma: no cover - the unique index said it exists
            raise Conflict("idempotency key collided; retry the request")
        return self._replay(existing, source, request, webhook)

    async def create_from_command(self, command: CreateJob) -> Created:
        """The catalog's auto-job rule; the same idempotency key never creates two jobs."""
        scoped = f"cmd:{command.idempotency_key}"
        options = JobOptions(
            kind=command.spec.kind,
            preset=command.spec.preset,
            start=command.spec.start,
            end=command.spec.end,
            mode=command.spec.mode,
            at=command.spec.at,
            count=command.spec.count,
        )
        async with self.uow() as uow:
            if existing := await uow.jobs.by_idempotency_key(scoped):
                return Created(existing, replayed=True)
            source = await self._source(
                uow, command.source_bucket, command.source_key, command.asset_id
            )
            job_id = uuid4()
            plan = plan_job(job_id, source, options)
            job = self._new_job(job_id, source, plan, command.priority, scoped, None)
            uow.jobs.add(job)
            self._queue(uow, job, source.duration, causation=command)
            try:
                await uow.commit()
            except DuplicateIdempotencyKey:
                pass  # a concurrent twin won; answer with its job below
            else:
                self.wake_relay()
                self.telemetry.job_created(job.kind, "command")
                return Created(job)
        # Read after the failed transaction is closed: no unit of work reads while it holds
        # a write connection, so a pool without overflow cannot deadlock.
        async with self.uow() as again:
            existing = await again.jobs.by_idempotency_key(scoped)
        assert existing is not None
        return Created(existing, replayed=True)

    async def cancel(self, job_id: UUID, reason: str = "cancelled by user") -> JobRecord:
        """Queued → cancelled at once; running → CancelJob to the transcoders; else 409."""
        for _ in range(CAS_ATTEMPTS):
            async with self.uow() as uow:
                job = await self._require(uow, job_id)
                now = utcnow()
                transition = machine.cancel(job.state, reason, now)
                if transition and not await uow.jobs.transition(job_id, job.state, transition, now):
                    continue  # an event moved the job meanwhile; decide again
                command = CancelJob(job_id=job_id, reason=reason, correlation_id=str(job_id))
                uow.outbox.command(command)
                if transition:
                    uow.outbox.event(
                        JobCancelled(
                            **command.caused(job_id=job_id, attempt=job.attempt, reason=reason)
                        )
                    )
                await uow.commit()
            self.wake_relay()
            return _applied(job, transition, now) if transition else job
        raise Conflict("the job kept changing while cancelling; retry the request")

    async def retry(self, job_id: UUID) -> JobRecord:
        """A failed or cancelled job runs again as a new attempt (attempt + 1)."""
        for _ in range(CAS_ATTEMPTS):
            async with self.uow() as uow:
                job = await self._require(uow, job_id)
                transition = machine.retry(job.state)
                asset = await uow.assets.get(job.asset_id) if job.asset_id else None
                now = utcnow()
                if not await uow.jobs.transition(job_id, job.state, transition, now):
                    continue
                retried = _applied(job, transition, now)
                self._queue(uow, retried, asset.duration_seconds if asset else None)
                await uow.commit()
            self.wake_relay()
            return retried
        raise Conflict("the job kept changing while retrying; retry the request")

    async def apply_event(self, event: Event) -> Outcome:
        """Apply a transcoder event (broker or Lambda callback); replays change nothing."""
        job_id: UUID = event.job_id  # type: ignore[attr-defined]
        outcome = Outcome.IGNORED
        for _ in range(CAS_ATTEMPTS):
            async with self.uow() as uow:
                job = await uow.jobs.get(job_id)
                if job is None:
                    outcome = Outcome.UNKNOWN_JOB
                    break
                transition = machine.decide(job.state, event)
                if transition is None:
                    break
                if await uow.jobs.transition(job_id, job.state, transition, utcnow()):
                    await uow.commit()
                    outcome = Outcome.APPLIED
                    break
        else:
            raise RuntimeError(f"job {job_id}: state kept changing while applying {event.id}")
        self.telemetry.event_applied(type(event).__name__, outcome.value)
        return outcome

    # ------------------------------------------------------------------ helpers

    async def _require(self, uow: UnitOfWork, job_id: UUID) -> JobRecord:
        job = await uow.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}; GET /api/jobs lists jobs")
        return job

    async def _source(
        self, uow: UnitOfWork, bucket: str, key: str | None, asset_id: UUID | None
    ) -> Source:
        """The registered asset (by id or key), or an unregistered object that exists in S3."""
        if key is not None:
            check_key(key, "source_key")
            if media_type(key) is None:
                raise InvalidRequest(
                    f"{key!r} is not a supported media file; supported extensions: "
                    + ", ".join(sorted(MEDIA_EXTENSIONS)),
                    details={"supported_extensions": sorted(MEDIA_EXTENSIONS)},
                )
        if asset_id is not None:
            asset = await uow.assets.get(asset_id)
            if asset is None or not asset.active:
                raise NotFound(f"no asset {asset_id}; GET /api/assets lists registered assets")
            if key is not None and key != asset.key:
                raise InvalidRequest(
                    f"asset {asset_id} is {asset.key!r}, not {key!r}; give one or the other"
                )
        else:
            asset = await uow.assets.by_key(bucket, key or "")
            if asset is not None and not asset.active:
                raise NotFound(f"{key!r} was removed from bucket {bucket!r}")
        if asset is not None:
            check_key(asset.key, "the asset's key")  # registered before the key rules grew
            kind = media_type(asset.key)
            if kind is None:
                raise InvalidRequest(f"asset {asset.key!r} is not a supported media file")
            return Source(asset.bucket, asset.key, kind, asset.id, asset.duration_seconds)
        assert key is not None
        if not await self.sources.exists(bucket, key):
            raise NotFound(
                f"no object {key!r} in bucket {bucket!r}; upload it first, or list registered "
                "media with GET /api/assets"
            )
        return Source(bucket, key, media_type(key))  # type: ignore[arg-type]

    def _new_job(
        self,
        job_id: UUID,
        source: Source,
        plan: JobPlan,
        priority: int,
        idempotency_key: str | None,
        webhook_url: str | None,
    ) -> JobRecord:
        now = utcnow()
        return JobRecord(
            id=job_id,
            asset_id=source.asset_id,
            source_bucket=source.bucket,
            source_key=source.key,
            kind=plan.spec.kind.value,
            preset=plan.preset,
            spec=plan.spec.model_dump(mode="json", exclude_none=True),
            output_bucket=self.bucket_out,
            output_key=plan.output_key,
            priority=priority,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
            created_at=now,
            updated_at=now,
        )

    def _queue(
        self,
        uow: UnitOfWork,
        job: JobRecord,
        duration: float | None,
        causation: CreateJob | None = None,
    ) -> None:
        """ProcessMedia (at the job's priority) and JobQueued, in the job's transaction."""
        envelope = causation.caused() if causation is not None else {}
        envelope["correlation_id"] = str(job.id)
        spec = JobSpec.model_validate(job.spec)
        process = ProcessMedia(
            **envelope,
            job_id=job.id,
            attempt=job.attempt,
            asset_id=job.asset_id,
            source_bucket=job.source_bucket,
            source_key=job.source_key,
            source_duration=duration,
            spec=spec,
            output_bucket=job.output_bucket,
            output_key=job.output_key,
            priority=job.priority,
        )
        uow.outbox.command(process)  # at the job's priority (ProcessMedia.priority)
        uow.outbox.event(
            JobQueued(
                **process.caused(),
                job_id=job.id,
                attempt=job.attempt,
                asset_id=job.asset_id,
                source_key=job.source_key,
                spec=spec,
                priority=job.priority,
            )
        )

    def _replay(
        self, existing: JobRecord, source: Source, request: JobRequest, webhook: str | None
    ) -> Created:
        """Same key and same request: the same job. Same key, another request: 409."""
        try:
            plan = plan_job(existing.id, source, request.options())
        except InvalidRequest:
            plan = None
        same = (
            plan is not None
            and (existing.source_bucket, existing.source_key) == (source.bucket, source.key)
            and existing.spec == plan.spec.model_dump(mode="json", exclude_none=True)
            and existing.output_key == plan.output_key
            and existing.priority == request.priority
            and existing.webhook_url == webhook
        )
        if not same:
            raise Conflict(
                "this Idempotency-Key was already used for a different request (job "
                f"{existing.id}); send the same body to get that job again, or use a new key",
                details={"job_id": str(existing.id)},
            )
        return Created(existing, replayed=True)


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


__all__ = ["Created", "JobRequest", "JobService", "JobState", "JobStatus", "Outcome", "Page"]
