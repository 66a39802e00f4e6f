"""Upload use cases: presigned URLs into the input bucket for clients without S3 credentials.

The client PUTs the bytes to S3 itself (one presigned PUT, or one presigned UploadPart URL per
part); the gateway only signs, checks and completes. Completing commits the upload's state with
a RegisterObject command to the catalog (the outbox: nothing lost if RabbitMQ or the catalog
is down), so the asset exists without waiting for a scan or a bucket notification; the reply
waits a moment for the asset row to give its id.

Why not request/reply, as a scan does: FastStream serialises every request of a broker behind
one lock, so a completion would queue behind a running scan, and a reply that comes after
the timeout is lost while the command may still be applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from mpr_gateway.application.ports import (
    StoredObject,
    UnitOfWorkFactory,
    UploadStorage,
)
from mpr_gateway.domain.errors import Conflict, InvalidRequest, NotFound
from mpr_gateway.domain.uploads import (
    UploadMode,
    UploadRecord,
    UploadStatus,
    check_part_numbers,
    check_size,
    choose_parts,
    plan_parts,
    upload_key,
)
from mpr_shared.contracts import RegisterObject

log = logging.getLogger(__name__)

SWEEP_BATCH = 100
# How often completing an upload looks for the catalog's asset row while it waits.
ASSET_POLL_SECONDS = (0.02, 0.05, 0.1, 0.2)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_bytes: int
    multipart_threshold: int
    part_size: int
    ttl_seconds: int
    register_wait_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class NewUpload:
    size: int
    key: str | None = None
    filename: str | None = None
    content_type: str | None = None
    overwrite: bool = False


@dataclass(frozen=True, slots=True)
class UploadView:
    """An upload and, while it is pending, the URLs to send its bytes to."""

    upload: UploadRecord
    url: str | None = None
    parts: list[tuple[int, str]] = field(default_factory=list)
    asset_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class UploadService:
    uow: UnitOfWorkFactory
    storage: UploadStorage
    bucket: str
    limits: UploadLimits
    wake_relay: Callable[[], None] = lambda: None
    clock: Callable[[], datetime] = utcnow

    async def start(self, request: NewUpload, client: str | None = None) -> UploadView:
        """Check the key and size, then sign the URLs (starting a multipart upload if big)."""
        key = upload_key(request.key, request.filename)
        check_size(request.size, self.limits.max_bytes)
        plan = plan_parts(request.size, self.limits.multipart_threshold, self.limits.part_size)
        if not request.overwrite and await self.storage.head(self.bucket, key) is not None:
            raise Conflict(
                f"{key!r} already exists in the input bucket; send overwrite: true to replace it",
                details={"key": key},
            )
        now = self.clock()
        upload = UploadRecord(
            id=uuid4(),
            bucket=self.bucket,
            key=key,
            size_bytes=request.size,
            mode=plan.mode.value,
            part_size=plan.part_size,
            content_type=request.content_type,
            client=client,
            created_at=now,
            expires_at=now + timedelta(seconds=self.limits.ttl_seconds),
        )
        if plan.mode is UploadMode.MULTIPART:
            upload.multipart_id = await self.storage.start_multipart(
                self.bucket, key, request.content_type
            )
        async with self.uow() as uow:
            await uow.uploads.add(upload)
            await uow.commit()
        log.info("upload %s of %a (%d bytes, %s) started", upload.id, key, upload.size_bytes, plan)
        return self._view(upload, range(1, upload.part_count + 1))

    async def get(self, upload_id: UUID) -> UploadView:
        """The upload; a pending one with fresh URLs for every part."""
        upload = await self._get(upload_id)
        if upload.status == UploadStatus.COMPLETED:
            return UploadView(upload, asset_id=await self._asset_id(upload))
        return self._view(upload, range(1, upload.part_count + 1))

    async def part_urls(self, upload_id: UUID, numbers: list[int]) -> UploadView:
        """Fresh URLs for some parts (to retry them), or for all when ``numbers`` is empty."""
        upload = await self._get(upload_id)
        upload.require_pending("sent to")
        if upload.mode != UploadMode.MULTIPART:
            raise InvalidRequest("a single-PUT upload has no parts; GET it for a fresh url")
        wanted = check_part_numbers(numbers, upload.part_count) if numbers else None
        return self._view(upload, wanted or range(1, upload.part_count + 1))

    async def complete(self, upload_id: UUID, parts: Sequence[tuple[int, str]] = ()) -> UploadView:
        """Finish the upload in S3, check its size and have the catalog register it."""
        upload = await self._get(upload_id)
        if upload.status == UploadStatus.COMPLETED:  # completing twice is fine
            return UploadView(upload, asset_id=await self._asset_id(upload))
        upload.require_pending("completed")
        stored = None
        if upload.mode == UploadMode.MULTIPART:
            stored = await self._complete_parts(upload, parts)
        stored = stored or await self.storage.head(upload.bucket, upload.key)
        if stored is None:
            raise Conflict(
                f"nothing was uploaded to {upload.key!r} yet; PUT the file to the url first",
                details={"key": upload.key},
            )
        if stored.size != upload.size_bytes and upload.mode == UploadMode.SINGLE:
            raise InvalidRequest(
                f"the object holds {stored.size} bytes but the upload declared "
                f"{upload.size_bytes}; PUT the whole file again, then complete",
                details={"uploaded": stored.size, "declared": upload.size_bytes},
            )
        return await self._register(upload, stored.etag)

    async def abort(self, upload_id: UUID) -> None:
        """Abort a pending upload (its multipart upload in S3 with it)."""
        upload = await self._get(upload_id)
        if upload.status == UploadStatus.ABORTED:
            return
        upload.require_pending("aborted")
        await self._stop(upload, UploadStatus.ABORTED)

    async def sweep(self) -> int:
        """Abort pending uploads past their time and any multipart upload in the bucket older
        than the TTL (servers without lifecycle rules keep them forever); returns how many."""
        now = self.clock()
        async with self.uow() as uow:
            expired = await uow.uploads.expired(now, SWEEP_BATCH)
        for upload in expired:
            await self._stop(upload, UploadStatus.EXPIRED)
        orphans = await self.storage.abort_stale(self.bucket, self.limits.ttl_seconds, now)
        if expired or orphans:
            log.info("upload sweep: %d expired, %d stale multipart uploads", len(expired), orphans)
        return len(expired) + orphans

    async def _get(self, upload_id: UUID) -> UploadRecord:
        async with self.uow() as uow:
            upload = await uow.uploads.get(upload_id)
        if upload is None:
            raise NotFound(f"no upload {upload_id}; start one with POST /api/uploads")
        return upload

    def _view(self, upload: UploadRecord, numbers: Sequence[int]) -> UploadView:
        if upload.status != UploadStatus.PENDING:
            return UploadView(upload)
        expires = self._url_lifetime(upload)
        bucket, key, size = upload.bucket, upload.key, upload.size_bytes
        if upload.multipart_id is None:
            return UploadView(upload, url=self.storage.put_url(bucket, key, size, expires))
        sign, mid = self.storage.part_url, upload.multipart_id
        parts = [(n, sign(bucket, key, mid, n, upload.part_bytes(n), expires)) for n in numbers]
        return UploadView(upload, parts=parts)

    def _url_lifetime(self, upload: UploadRecord) -> int:
        """URLs live until the upload expires (a minute at least)."""
        return max(60, int((upload.expires_at - self.clock()).total_seconds()))

    async def _complete_parts(
        self, upload: UploadRecord, given: Sequence[tuple[int, str]]
    ) -> StoredObject | None:
        """The object made of the upload's parts; None when an earlier call completed it."""
        assert upload.multipart_id is not None
        stored = await self.storage.parts(upload.bucket, upload.key, upload.multipart_id)
        if stored is None:
            return None
        parts = choose_parts(upload, stored, dict(given))
        etag = await self.storage.complete(upload.bucket, upload.key, upload.multipart_id, parts)
        return StoredObject(upload.size_bytes, etag)

    async def _register(self, upload: UploadRecord, etag: str) -> UploadView:
        """Record the completion with the catalog's RegisterObject, then wait for the asset."""
        command = RegisterObject(
            correlation_id=str(upload.id),
            bucket=upload.bucket,
            key=upload.key,
            size_bytes=upload.size_bytes,
            etag=etag,
            requested_by=f"gateway:upload:{upload.id}",
        )
        now = self.clock()
        async with self.uow() as uow:
            done = await uow.uploads.finish(upload.id, UploadStatus.COMPLETED, now)
            if done:
                uow.outbox.add(command)
            await uow.commit()
        if not done:  # another call completed or aborted it meanwhile
            return await self.get(upload.id)
        self.wake_relay()
        upload.status, upload.finished_at = UploadStatus.COMPLETED.value, now
        asset_id = await self._wait_for_asset(upload, etag)
        log.info("upload %s of %a completed; asset %s", upload.id, upload.key, asset_id)
        return UploadView(upload, asset_id=asset_id)

    async def _wait_for_asset(self, upload: UploadRecord, etag: str) -> UUID | None:
        """The asset once the catalog has registered this very object (same ETag), or None
        after ``register_wait_seconds``: the client then finds it by key."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.register_wait_seconds
        attempt = 0
        while True:
            async with self.uow() as uow:
                asset = await uow.assets.by_key(upload.bucket, upload.key)
            if asset is not None and asset.active and asset.etag.strip('"') == etag:
                return asset.id
            pause = ASSET_POLL_SECONDS[min(attempt, len(ASSET_POLL_SECONDS) - 1)]
            if loop.time() + pause > deadline:
                return None
            await asyncio.sleep(pause)
            attempt += 1

    async def _asset_id(self, upload: UploadRecord) -> UUID | None:
        async with self.uow() as uow:
            asset = await uow.assets.by_key(upload.bucket, upload.key)
        return asset.id if asset is not None and asset.active else None

    async def _stop(self, upload: UploadRecord, status: UploadStatus) -> None:
        if upload.multipart_id is not None:
            await self.storage.abort(upload.bucket, upload.key, upload.multipart_id)
        async with self.uow() as uow:
            await uow.uploads.finish(upload.id, status, self.clock())
            await uow.commit()
        log.info("upload %s of %a %s", upload.id, upload.key, status.value)
