"""GraphQL schema (graphene). Resolvers are thin: parse arguments, call the same application
services as REST, map the result. Nested objects load through per-request dataloaders, so a
page of jobs with their assets costs two queries, not N+1."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import graphene
from graphene.types.generic import GenericScalar

from mpr_gateway.application.jobs import MAX_PAGE, JobService, parse_job_request
from mpr_gateway.application.ports import AssetFilter, JobFilter
from mpr_gateway.application.system import list_presets
from mpr_gateway.domain.errors import InvalidRequest
from mpr_shared.contracts import JobKind, JobStatus

ASSET_JOBS_DEFAULT = 20


def _ctx(info) -> dict[str, Any]:
    return info.context


def _uuid(value: str, name: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidRequest(f"{name} must be a UUID, got {value!r}") from None


def _choice(value: str | None, enum: type, name: str) -> str | None:
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


class JobOutput(graphene.ObjectType):
    key = graphene.String(required=True)
    bucket = graphene.String(required=True)
    size_bytes = graphene.Float(required=True, description="Bytes (Float: may exceed 2^31).")
    download_url = graphene.String(required=True, description="Presigned GET URL.")
    probe = GenericScalar()


class Job(graphene.ObjectType):
    id = graphene.ID(required=True)
    asset_id = graphene.ID()
    asset = graphene.Field(lambda: Asset, description="The source asset (batched).")
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
    outputs = graphene.List(graphene.NonNull(JobOutput), required=True)
    webhook_url = graphene.String()
    created_at = graphene.DateTime(required=True)
    updated_at = graphene.DateTime(required=True)
    started_at = graphene.DateTime()
    finished_at = graphene.DateTime()

    @staticmethod
    def resolve_outputs(job, info):
        jobs: JobService = _ctx(info)["gateway"].jobs
        return jobs.outputs(job)

    @staticmethod
    async def resolve_asset(job, info):
        if job.asset_id is None:
            return None
        return await _ctx(info)["loaders"].asset.load(job.asset_id)


class Asset(graphene.ObjectType):
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
        graphene.NonNull(Job),
        required=True,
        limit=graphene.Int(description=f"Newest N jobs (default {ASSET_JOBS_DEFAULT})."),
        description="The asset's jobs, newest first (batched).",
    )

    @staticmethod
    async def resolve_jobs(asset, info, limit: int | None = None):
        jobs = await _ctx(info)["loaders"].asset_jobs.load(asset.id)
        return jobs[: _limit(limit, ASSET_JOBS_DEFAULT)]


class AssetPage(graphene.ObjectType):
    items = graphene.List(graphene.NonNull(Asset), required=True)
    next_cursor = graphene.String()


class JobPage(graphene.ObjectType):
    items = graphene.List(graphene.NonNull(Job), required=True)
    next_cursor = graphene.String()


class Rendition(graphene.ObjectType):
    name = graphene.String(required=True)
    height = graphene.Int(required=True)
    video_bitrate = graphene.String(required=True)
    audio_bitrate = graphene.String(required=True)


class Preset(graphene.ObjectType):
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
    ladder = graphene.List(graphene.NonNull(Rendition), required=True)


class ScanResult(graphene.ObjectType):
    found = graphene.Int(required=True)
    registered = graphene.Int(required=True)
    skipped = graphene.Int(required=True)
    files = graphene.List(graphene.NonNull(graphene.String), required=True)
    updated = graphene.Int(required=True)


class Query(graphene.ObjectType):
    assets = graphene.Field(
        AssetPage,
        required=True,
        type=graphene.String(description="video | audio"),
        status=graphene.String(description="active | deleted"),
        prefix=graphene.String(),
        q=graphene.String(description="Substring of the key."),
        limit=graphene.Int(),
        cursor=graphene.String(),
    )
    asset = graphene.Field(Asset, id=graphene.ID(required=True))
    jobs = graphene.Field(
        JobPage,
        required=True,
        status=graphene.String(),
        kind=graphene.String(),
        asset_id=graphene.ID(),
        limit=graphene.Int(),
        cursor=graphene.String(),
    )
    job = graphene.Field(Job, id=graphene.ID(required=True))
    presets = graphene.List(graphene.NonNull(Preset), required=True, kind=graphene.String())

    @staticmethod
    async def resolve_assets(root, info, limit=None, cursor=None, **filters):
        media = filters.get("type")
        if media is not None and media not in ("video", "audio"):
            raise InvalidRequest(f"type must be video or audio; got {media!r}")
        status = filters.get("status")
        if status is not None and status not in ("active", "deleted"):
            raise InvalidRequest(f"status must be active or deleted; got {status!r}")
        query = AssetFilter(media, status, None, filters.get("prefix"), filters.get("q"))
        return await _ctx(info)["gateway"].assets.page(query, cursor, _limit(limit, 50))

    @staticmethod
    async def resolve_asset(root, info, id):
        return await _ctx(info)["gateway"].assets.get(_uuid(id, "id"))

    @staticmethod
    async def resolve_jobs(root, info, limit=None, cursor=None, asset_id=None, **filters):
        query = JobFilter(
            _choice(filters.get("status"), JobStatus, "status"),
            _choice(filters.get("kind"), JobKind, "kind"),
            _uuid(asset_id, "assetId") if asset_id is not None else None,
        )
        return await _ctx(info)["gateway"].jobs.page(query, cursor, _limit(limit, 50))

    @staticmethod
    async def resolve_job(root, info, id):
        return await _ctx(info)["gateway"].jobs.get(_uuid(id, "id"))

    @staticmethod
    def resolve_presets(root, info, kind=None):
        return list_presets(JobKind(_choice(kind, JobKind, "kind")) if kind else None)


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


class ScanMediaFolder(graphene.Mutation):
    """Scan the input bucket and register new media (the spec's mutation)."""

    class Arguments:
        prefix = graphene.String()

    Output = ScanResult

    @staticmethod
    async def mutate(root, info, prefix=None):
        return await _ctx(info)["gateway"].assets.scan(prefix or "")


class CreateJob(graphene.Mutation):
    """Queue a job (same rules as POST /api/jobs)."""

    class Arguments:
        input = JobInput(required=True)
        idempotency_key = graphene.String()

    Output = Job

    @staticmethod
    async def mutate(root, info, input, idempotency_key=None):
        request = parse_job_request({k: v for k, v in input.items() if v is not None})
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise InvalidRequest("idempotencyKey must be 1-200 characters")
        ctx = _ctx(info)
        created = await ctx["gateway"].jobs.create(
            request, idempotency_key=idempotency_key, client=ctx["client"]
        )
        return created.job


class CancelJob(graphene.Mutation):
    """Cancel a queued or running job."""

    class Arguments:
        id = graphene.ID(required=True)

    Output = Job

    @staticmethod
    async def mutate(root, info, id):
        return await _ctx(info)["gateway"].jobs.cancel(_uuid(id, "id"))


class RetryJob(graphene.Mutation):
    """Run a failed or cancelled job again as a new attempt."""

    class Arguments:
        id = graphene.ID(required=True)

    Output = Job

    @staticmethod
    async def mutate(root, info, id):
        return await _ctx(info)["gateway"].jobs.retry(_uuid(id, "id"))


class Mutation(graphene.ObjectType):
    scan_media_folder = ScanMediaFolder.Field()
    create_job = CreateJob.Field()
    cancel_job = CancelJob.Field()
    retry_job = RetryJob.Field()


schema = graphene.Schema(query=Query, mutation=Mutation)
