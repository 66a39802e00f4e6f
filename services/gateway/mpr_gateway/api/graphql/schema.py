"""GraphQL schema (graphene). Resolvers are thin: parse arguments, call the same application
services as REST, map the result. Nested objects load through per-request dataloaders, so a
page of jobs with their assets costs two queries, not N+1.

The Python classes end in ``Type``/``Mutation``, apart from the contracts they are not
(``mpr_shared.contracts.CreateJob`` is a command, ``CreateJobMutation`` a GraphQL field);
their GraphQL names (``Meta.name``) stay ``Job``, ``Asset``, ``Preset``... as clients know
them from fragments and generated code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

import graphene
from graphene.types.generic import GenericScalar
from graphql import GraphQLResolveInfo

from mpr_gateway.application.job_request import parse_job_request
from mpr_gateway.application.jobs import OutputView
from mpr_gateway.application.operations import QueueView, StatsView
from mpr_gateway.application.pages import DEFAULT_PAGE, MAX_PAGE, Page
from mpr_gateway.application.ports import AssetFilter, JobFilter
from mpr_gateway.application.presets import list_presets
from mpr_gateway.deps import get_container
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.errors import InvalidRequest
from mpr_gateway.domain.jobs import JobRecord
from mpr_gateway.domain.workers import WorkerRecord
from mpr_shared.contracts import JobKind, JobStatus, ScanResult
from mpr_shared.presets import Preset

if TYPE_CHECKING:
    from mpr_gateway.api.graphql.app import GraphQLContext

ASSET_JOBS_DEFAULT = 20


def _ctx(info: GraphQLResolveInfo) -> GraphQLContext:
    context: GraphQLContext = info.context
    return context


def _uuid(value: str, name: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidRequest(f"{name} must be a UUID, got {value!r}") from None


def _choice(value: str | None, enum: type[StrEnum], name: str) -> str | None:
    if value is None:
        return None
    valid = [m.value for m in enum]
    if value not in valid:
        raise InvalidRequest(f"{name} must be one of {', '.join(valid)}; got {value!r}")
    return value


def _limit(value: int | None, default: int) -> int:
    limit = default if value is None else value
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}; got {limit}")
    return limit


class JobOutputType(graphene.ObjectType):
    class Meta:
        name = "JobOutput"

    key = graphene.String(required=True)
    bucket = graphene.String(required=True)
    size_bytes = graphene.Float(required=True, description="Bytes (Float: may exceed 2^31).")
    download_url = graphene.String(required=True, description="Presigned GET URL.")
    probe = GenericScalar()


class JobType(graphene.ObjectType):
    class Meta:
        name = "Job"

    id = graphene.ID(required=True)
    asset_id = graphene.ID()
    asset = graphene.Field(lambda: AssetType, description="The source asset (batched).")
    source_bucket = graphene.String(required=True)
    source_key = graphene.String(required=True)
    kind = graphene.String(required=True, description="transcode | trim | audio | thumbnail | hls")
    preset = graphene.String()
    spec = GenericScalar(required=True)
    output_bucket = graphene.String(required=True)
    output_key = graphene.String(required=True)
    priority = graphene.Int(required=True)
    status = graphene.String(required=True, description="queued | running | completed | …")
    attempt = graphene.Int(required=True)
    progress = graphene.Float(required=True, description="Percent, never decreases.")
    worker = graphene.String()
    error = graphene.String()
    error_lines = graphene.List(graphene.NonNull(graphene.String))
    outputs = graphene.List(graphene.NonNull(JobOutputType), required=True)
    webhook_url = graphene.String()
    created_at = graphene.DateTime(required=True)
    updated_at = graphene.DateTime(required=True)
    started_at = graphene.DateTime()
    finished_at = graphene.DateTime()
    fps = graphene.Float(description="Frames encoded per second (latest progress).")
    speed = graphene.Float(description="Encoding speed as a multiple of real time.")
    eta_seconds = graphene.Float(description="Seconds left, estimated; 0 when completed.")
    out_time_seconds = graphene.Float(description="Media seconds written so far.")
    log_tail = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="FFmpeg's last log lines once the job ended (at most 20).",
    )
    executor = graphene.String(required=True, description="rabbitmq | stepfunctions")

    @staticmethod
    def resolve_spec(job: JobRecord, info: GraphQLResolveInfo) -> dict[str, Any]:
        return job.spec.model_dump(mode="json", exclude_none=True)

    @staticmethod
    def resolve_log_tail(job: JobRecord, info: GraphQLResolveInfo) -> list[str]:
        return job.log_tail or []

    @staticmethod
    def resolve_outputs(job: JobRecord, info: GraphQLResolveInfo) -> list[OutputView]:
        return _ctx(info).jobs.outputs(job)

    @staticmethod
    async def resolve_asset(job: JobRecord, info: GraphQLResolveInfo) -> AssetRecord | None:
        if job.asset_id is None:
            return None
        asset: AssetRecord | None = await _ctx(info).loaders.asset.load(job.asset_id)
        return asset


class AssetType(graphene.ObjectType):
    class Meta:
        name = "Asset"

    id = graphene.ID(required=True)
    bucket = graphene.String(required=True)
    key = graphene.String(required=True)
    media_type = graphene.String(required=True)
    size_bytes = graphene.Float(required=True)
    etag = graphene.String(required=True)
    status = graphene.String(required=True)
    probe_status = graphene.String(required=True)
    probe_error = graphene.String()
    probe = GenericScalar()
    duration_seconds = graphene.Float()
    created_at = graphene.DateTime(required=True)
    updated_at = graphene.DateTime(required=True)
    deleted_at = graphene.DateTime()
    jobs = graphene.List(
        graphene.NonNull(JobType),
        required=True,
        limit=graphene.Int(description=f"Newest N jobs (default {ASSET_JOBS_DEFAULT})."),
        description="The asset's jobs, newest first (batched).",
    )

    @staticmethod
    async def resolve_jobs(
        asset: AssetRecord, info: GraphQLResolveInfo, limit: int | None = None
    ) -> list[JobRecord]:
        jobs: list[JobRecord] = await _ctx(info).loaders.asset_jobs.load(asset.id)
        return jobs[: _limit(limit, ASSET_JOBS_DEFAULT)]


class AssetPageType(graphene.ObjectType):
    class Meta:
        name = "AssetPage"

    items = graphene.List(graphene.NonNull(AssetType), required=True)
    next_cursor = graphene.String()


class JobPageType(graphene.ObjectType):
    class Meta:
        name = "JobPage"

    items = graphene.List(graphene.NonNull(JobType), required=True)
    next_cursor = graphene.String()


class RenditionType(graphene.ObjectType):
    class Meta:
        name = "Rendition"

    name = graphene.String(required=True)
    height = graphene.Int(required=True)
    video_bitrate = graphene.String(required=True)
    audio_bitrate = graphene.String(required=True)


class PresetType(graphene.ObjectType):
    class Meta:
        name = "Preset"

    name = graphene.String(required=True)
    kind = graphene.String(required=True)
    description = graphene.String(required=True)
    container = graphene.String(required=True)
    extension = graphene.String(required=True)
    video_codec = graphene.String()
    audio_codec = graphene.String()
    height = graphene.Int()
    crf = graphene.Int()
    video_bitrate = graphene.String()
    audio_bitrate = graphene.String()
    ladder = graphene.List(graphene.NonNull(RenditionType), required=True)


class ScanResultType(graphene.ObjectType):
    class Meta:
        name = "ScanResult"

    found = graphene.Int(required=True)
    registered = graphene.Int(required=True)
    skipped = graphene.Int(required=True)
    files = graphene.List(graphene.NonNull(graphene.String), required=True)
    updated = graphene.Int(required=True)


class WorkerType(graphene.ObjectType):
    class Meta:
        name = "Worker"

    id = graphene.ID(required=True, description="Replica id.")
    host = graphene.String(required=True)
    pid = graphene.Int(required=True)
    ffmpeg_version = graphene.String()
    version = graphene.String(required=True)
    current_job_id = graphene.ID(description="The job it runs now; null when idle.")
    current_job_progress = graphene.Float()
    status = graphene.String(required=True, description="busy | idle")
    started_at = graphene.DateTime(required=True)
    last_seen = graphene.DateTime(required=True)
    interval_seconds = graphene.Float(required=True)


class JobCountsType(graphene.ObjectType):
    class Meta:
        name = "JobCounts"

    queued = graphene.Int(required=True)
    running = graphene.Int(required=True)

    @staticmethod
    def resolve_queued(counts: dict[str, int], info: GraphQLResolveInfo) -> int:
        return counts["queued"]

    @staticmethod
    def resolve_running(counts: dict[str, int], info: GraphQLResolveInfo) -> int:
        return counts["running"]


class QueueType(graphene.ObjectType):
    class Meta:
        name = "Queue"

    queue = graphene.String(required=True)
    ready = graphene.Int(required=True)
    unacked = graphene.Int(description="Null without RABBITMQ_MANAGEMENT_URL.")
    consumers = graphene.Int(required=True)
    jobs = graphene.Field(JobCountsType, required=True)


class StatsType(graphene.ObjectType):
    class Meta:
        name = "Stats"

    window_hours = graphene.Int(required=True)
    completed = graphene.Int(required=True)
    failed = graphene.Int(required=True)
    cancelled = graphene.Int(required=True)
    median_speed = graphene.Float()
    bytes_in = graphene.Float(required=True, description="Bytes (Float: may exceed 2^31).")
    bytes_out = graphene.Float(required=True, description="Bytes (Float: may exceed 2^31).")


class Query(graphene.ObjectType):
    assets = graphene.Field(
        AssetPageType,
        required=True,
        type=graphene.String(description="video | audio"),
        status=graphene.String(description="active | deleted"),
        prefix=graphene.String(),
        q=graphene.String(description="Substring of the key."),
        limit=graphene.Int(),
        cursor=graphene.String(),
    )
    asset = graphene.Field(AssetType, id=graphene.ID(required=True))
    jobs = graphene.Field(
        JobPageType,
        required=True,
        status=graphene.String(),
        kind=graphene.String(),
        asset_id=graphene.ID(),
        limit=graphene.Int(),
        cursor=graphene.String(),
    )
    job = graphene.Field(JobType, id=graphene.ID(required=True))
    presets = graphene.List(graphene.NonNull(PresetType), required=True, kind=graphene.String())
    workers = graphene.List(
        graphene.NonNull(WorkerType), required=True, description="Live transcoder replicas."
    )
    queue = graphene.Field(QueueType, required=True, description="The job queue's depth.")
    stats = graphene.Field(StatsType, required=True, description="The last 24 hours' jobs.")

    @staticmethod
    async def resolve_assets(
        root: None,
        info: GraphQLResolveInfo,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: str,
    ) -> Page[AssetRecord]:
        media = filters.get("type")
        if media is not None and media not in ("video", "audio"):
            raise InvalidRequest(f"type must be video or audio; got {media!r}")
        status = filters.get("status")
        if status is not None and status not in ("active", "deleted"):
            raise InvalidRequest(f"status must be active or deleted; got {status!r}")
        query = AssetFilter(media, status, None, filters.get("prefix"), filters.get("q"))
        return await _ctx(info).assets.page(query, cursor, _limit(limit, DEFAULT_PAGE))

    @staticmethod
    async def resolve_asset(root: None, info: GraphQLResolveInfo, id: str) -> AssetRecord:
        return await _ctx(info).assets.get(_uuid(id, "id"))

    @staticmethod
    async def resolve_jobs(
        root: None,
        info: GraphQLResolveInfo,
        limit: int | None = None,
        cursor: str | None = None,
        asset_id: str | None = None,
        **filters: str,
    ) -> Page[JobRecord]:
        query = JobFilter(
            _choice(filters.get("status"), JobStatus, "status"),
            _choice(filters.get("kind"), JobKind, "kind"),
            _uuid(asset_id, "assetId") if asset_id is not None else None,
        )
        return await _ctx(info).jobs.page(query, cursor, _limit(limit, DEFAULT_PAGE))

    @staticmethod
    async def resolve_job(root: None, info: GraphQLResolveInfo, id: str) -> JobRecord:
        return await _ctx(info).jobs.get(_uuid(id, "id"))

    @staticmethod
    def resolve_presets(
        root: None, info: GraphQLResolveInfo, kind: str | None = None
    ) -> list[Preset]:
        choice = _choice(kind, JobKind, "kind")
        return list_presets(JobKind(choice) if choice else None)

    @staticmethod
    async def resolve_workers(root: None, info: GraphQLResolveInfo) -> list[WorkerRecord]:
        return await get_container(_ctx(info).request).workers.live()

    @staticmethod
    async def resolve_queue(root: None, info: GraphQLResolveInfo) -> QueueView:
        return await get_container(_ctx(info).request).queue.depth()

    @staticmethod
    async def resolve_stats(root: None, info: GraphQLResolveInfo) -> StatsView:
        return await get_container(_ctx(info).request).queue.stats()


class JobInput(graphene.InputObjectType):
    source_key = graphene.String()
    asset_id = graphene.ID()
    kind = graphene.String(required=True, description="transcode | trim | audio | thumbnail | hls")
    preset = graphene.String()
    output_key = graphene.String()
    start = graphene.Float()
    end = graphene.Float()
    mode = graphene.String(description="trim: copy | accurate")
    at = graphene.Float()
    count = graphene.Int()
    priority = graphene.Int()
    webhook_url = graphene.String()
    executor = graphene.String(
        description="rabbitmq | stepfunctions (default EXECUTOR; EXECUTORS_ALLOWED lists which)"
    )


class ScanMediaFolderMutation(graphene.Mutation):
    """Scan the input bucket and register new media (the spec's mutation)."""

    class Arguments:
        prefix = graphene.String()

    Output = ScanResultType

    @staticmethod
    async def mutate(root: None, info: GraphQLResolveInfo, prefix: str | None = None) -> ScanResult:
        context = _ctx(info)
        return await context.assets.scan(prefix or "", context.client)


class CreateJobMutation(graphene.Mutation):
    """Queue a job (the same rules as the REST API's)."""

    class Arguments:
        input = JobInput(required=True)
        idempotency_key = graphene.String()

    Output = JobType

    @staticmethod
    async def mutate(
        root: None,
        info: GraphQLResolveInfo,
        input: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> JobRecord:
        request = parse_job_request({k: v for k, v in input.items() if v is not None})
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise InvalidRequest("idempotencyKey must be 1-200 characters")
        context = _ctx(info)
        created = await context.jobs.create(
            request, idempotency_key=idempotency_key, client=context.client
        )
        return created.job


class CancelJobMutation(graphene.Mutation):
    """Cancel a queued or running job."""

    class Arguments:
        id = graphene.ID(required=True)

    Output = JobType

    @staticmethod
    async def mutate(root: None, info: GraphQLResolveInfo, id: str) -> JobRecord:
        return await _ctx(info).jobs.cancel(_uuid(id, "id"))


class RetryJobMutation(graphene.Mutation):
    """Run a failed or cancelled job again as a new attempt."""

    class Arguments:
        id = graphene.ID(required=True)

    Output = JobType

    @staticmethod
    async def mutate(root: None, info: GraphQLResolveInfo, id: str) -> JobRecord:
        return await _ctx(info).jobs.retry(_uuid(id, "id"))


class Mutation(graphene.ObjectType):
    scan_media_folder = ScanMediaFolderMutation.Field()
    create_job = CreateJobMutation.Field()
    cancel_job = CancelJobMutation.Field()
    retry_job = RetryJobMutation.Field()


schema = graphene.Schema(query=Query, mutation=Mutation)
