"""The Storage port on S3, through mpr_shared.storage (one boto3 code path for MinIO,
SeaweedFS and AWS). boto3 blocks, so every call runs in a thread; network failures are
retried with backoff and then raised as TransientError.

Objects below the multipart threshold (16 MiB, mpr_shared.storage.TRANSFER_CONFIG) move in one
request: a download is one streamed GetObject whose Content-Length is checked against the limit
before a byte is written, an upload one PutObject. boto3's managed transfers cost a HEAD before
the GET and a thread pool per call (~25-45 ms of a short job, bench/README.md); above the
threshold they are worth it, as parallel ranged GETs and multipart uploads.

Incomplete multipart uploads are garbage that S3 keeps (and bills) until someone aborts them.
boto3's managed transfer aborts the upload of a part that failed, but only if it can: when S3
itself is what failed, its abort fails too and is only logged at debug level, and an upload
whose CreateMultipartUpload answer was lost has no id to abort. So an upload with a failed
attempt aborts its key's incomplete uploads itself once it ends, a multipart one that
succeeded does too (what an earlier delivery of the job could not abort while S3 was down
outlives that delivery: bench/faults.py found it), and each replica sweeps the
output bucket of uploads older than MULTIPART_UPLOAD_TTL_SECONDS, at start-up and every
MULTIPART_SWEEP_INTERVAL_SECONDS with mpr_shared.multipart_sweeper (SeaweedFS has no lifecycle
rules; where the server has them, the AbortIncompleteMultipartUpload rule is set too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mpr_shared import storage
from mpr_transcoder.application.ports import SourceMissing, SourceTooLarge
from mpr_transcoder.domain.errors import TransientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_ONE_REQUEST_BELOW = storage.TRANSFER_CONFIG.multipart_threshold
_CHUNK = 1024 * 1024


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return _code(exc) not in _NOT_FOUND
    return isinstance(exc, BotoCoreError | OSError)


class S3Storage:
    """The real Storage port."""

    def __init__(self, client: S3Client, *, attempts: int = 4, max_wait: float = 8.0) -> None:
        self.client = client
        self.attempts = attempts
        self.max_wait = max_wait

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=0.2, max=self.max_wait, jitter=0.2),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        try:
            result: T = await retrying(asyncio.to_thread, fn, *args, **kwargs)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise SourceMissing(what) from exc
            raise TransientError(f"S3 {what} failed: {exc}") from exc
        except (BotoCoreError, OSError) as exc:
            raise TransientError(f"S3 {what} failed: {exc}") from exc
        return result

    async def check_bucket(self, bucket: str) -> None:
        """Readiness: ``bucket`` exists and these credentials reach it (no retries)."""
        await asyncio.to_thread(self.client.head_bucket, Bucket=bucket)

    async def size(self, bucket: str, key: str) -> int:
        head = await self._call("head", self.client.head_object, Bucket=bucket, Key=key)
        return int(head["ContentLength"])

    async def download(self, bucket: str, key: str, dest: Path, *, max_bytes: int) -> int:
        size, written = await self._call("download", self._get, bucket, key, dest, max_bytes)
        if not written:  # large: parallel ranged GETs
            await self._call(
                "download", storage.download_file, key, dest, bucket, client=self.client
            )
        return size

    def _get(self, bucket: str, key: str, dest: Path, max_bytes: int) -> tuple[int, bool]:
        """The object's size, and whether one GET streamed it to ``dest`` (not for a
        multipart-sized object); SourceTooLarge, before a byte is written, above the limit."""
        response = self.client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            size = int(response["ContentLength"])
            if size > max_bytes:
                raise SourceTooLarge(size)
            if size >= _ONE_REQUEST_BELOW:
                return size, False
            # botocore checks the length read against Content-Length (IncompleteReadError).
            with dest.open("wb") as out:
                for chunk in body.iter_chunks(_CHUNK):
                    out.write(chunk)
            return size, True
        finally:
            body.close()

    async def presigned_url(self, bucket: str, key: str, expires_in: int) -> str:
        # Signed for the internal endpoint (this client), not the public one: FFmpeg runs here.
        return await self._call(
            "presign", storage.get_presigned_url, key, bucket, expires_in, client=self.client
        )

    async def upload(self, path: Path, bucket: str, key: str) -> int:
        """Upload ``path`` (multipart when large); no incomplete upload of ``key`` is left
        behind by an attempt that failed, whether a later one succeeded or not."""
        if (size := await self._call("upload", self._put, path, bucket, key)) is not None:
            return size
        failed: list[BaseException] = []

        def attempt() -> int:
            try:
                return storage.upload_file(path, key, bucket, client=self.client)
            except Exception as exc:
                log.warning("S3 upload of s3://%s/%s failed: %s", bucket, key, exc)
                failed.append(exc)
                raise

        try:
            size = await self._call("upload", attempt)
        finally:
            if failed:
                await self._abort_incomplete(bucket, key)
        if not failed and size >= storage.TRANSFER_CONFIG.multipart_threshold:
            # An earlier delivery of this job may have left one: its abort fails while S3 is
            # down, and an outage can outlast a delivery's retries. The key is the job's.
            await self._abort_incomplete(bucket, key)
        return size

    def _put(self, path: Path, bucket: str, key: str) -> int | None:
        """One PutObject below the multipart threshold, returning the size (no multipart
        upload exists to abort when it fails); None, nothing sent, for a larger file."""
        if (size := path.stat().st_size) >= _ONE_REQUEST_BELOW:
            return None
        content_type = storage.content_type_of(path.name)
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        with path.open("rb") as body:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return size

    async def _abort_incomplete(self, bucket: str, key: str) -> None:
        """Abort every incomplete multipart upload of ``key`` (ours: the key is the job's)."""

        def abort() -> int:
            listed = storage.list_multipart_uploads(bucket, key, client=self.client)
            mine = [upload for upload in listed if upload.key == key]
            return storage.abort_multipart_uploads(bucket, mine, client=self.client)

        try:
            aborted = await self._call("abort", abort)
        except (TransientError, SourceMissing) as exc:
            log.warning(
                "incomplete uploads of s3://%s/%s are left to its next upload or the sweep: %s",
                bucket,
                key,
                exc,
            )
            return
        if aborted:
            log.info("aborted %d incomplete upload(s) of s3://%s/%s", aborted, bucket, key)

    async def list_keys(self, bucket: str, prefix: str) -> list[str]:
        def listing() -> list[str]:
            objects = storage.list_objects(bucket, prefix, extensions=None, client=self.client)
            return [o.key for o in objects]

        return await self._call("list", listing)

    async def delete(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch: Any = [{"Key": k} for k in keys[start : start + 1000]]
            await self._call(
                "delete",
                self.client.delete_objects,
                Bucket=bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
