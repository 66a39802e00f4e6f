"""S3 adapter of the uploads: presigned PUT and UploadPart URLs, multipart calls, bucket set-up.

URLs are signed for S3_PUBLIC_ENDPOINT_URL (the host the client reaches); the calls the
gateway makes itself go to S3_ENDPOINT_URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from mpr_gateway.application.ports import StoredObject
from mpr_gateway.domain.errors import Unavailable
from mpr_gateway.domain.uploads import StoredPart
from mpr_shared import storage
from mpr_shared.multipart_sweeper import UploadSweeper
from mpr_shared.settings import CommonSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CORSRuleTypeDef
else:
    S3Client = Any
    CompletedPartTypeDef = CORSRuleTypeDef = dict

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
# Headers a browser's PUT sends and reads: ETag must be exposed for a client that completes
# with its own part list. https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html
CORS_ALLOWED_HEADERS = ["*"]
CORS_EXPOSED_HEADERS = ["ETag"]
CORS_MAX_AGE_SECONDS = 3600
CORS_RULE_ID = "mpr-browsers"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def _in_thread(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call`` on a worker thread (boto3 blocks); S3 failing is a 503, not a 500."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (BotoCoreError, ClientError) as exc:
        what = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        log.warning("S3 call %s failed: %s", getattr(call, "__name__", call), exc)
        raise Unavailable(f"the S3 server failed the request ({what}); try again") from None


class S3Uploads:
    def __init__(self, settings: CommonSettings) -> None:
        self._client: S3Client = storage.get_s3_client(settings)
        self._public: S3Client = storage.get_s3_client(settings, public=True)

    async def head(self, bucket: str, key: str) -> StoredObject | None:
        return await _in_thread(self._head, bucket, key)

    def _head(self, bucket: str, key: str) -> StoredObject | None:
        try:
            found = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return None
            raise
        return StoredObject(int(found.get("ContentLength", 0)), found.get("ETag", "").strip('"'))

    def put_url(self, bucket: str, key: str, size: int, expires: int) -> str:
        # A signed Content-Length: S3 refuses a body of any other size (403), so the size
        # limit and the plan hold whatever the client sends.
        params = {"Bucket": bucket, "Key": key, "ContentLength": size}
        return self._public.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)

    async def start_multipart(self, bucket: str, key: str, content_type: str | None) -> str:
        def start() -> str:
            if content_type:
                return self._client.create_multipart_upload(
                    Bucket=bucket, Key=key, ContentType=content_type
                )["UploadId"]
            return self._client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

        return await _in_thread(start)

    def part_url(
        self, bucket: str, key: str, upload_id: str, number: int, size: int, expires: int
    ) -> str:
        params = {
            "Bucket": bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": number,
            "ContentLength": size,
        }
        return self._public.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires)

    async def parts(self, bucket: str, key: str, upload_id: str) -> list[StoredPart] | None:
        return await _in_thread(self._parts, bucket, key, upload_id)

    def _parts(self, bucket: str, key: str, upload_id: str) -> list[StoredPart] | None:
        pages = self._client.get_paginator("list_parts")
        found: list[StoredPart] = []
        try:
            for page in pages.paginate(Bucket=bucket, Key=key, UploadId=upload_id):
                found += [
                    StoredPart(p["PartNumber"], p["Size"], p["ETag"].strip('"'))
                    for p in page.get("Parts", ())
                ]
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                return None
            raise
        return found

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[StoredPart]
    ) -> str:
        listed: list[CompletedPartTypeDef] = [
            {"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts
        ]
        done = await _in_thread(
            self._client.complete_multipart_upload,
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )
        return done.get("ETag", "").strip('"')

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        upload = storage.MultipartUpload(key, upload_id, None)
        await _in_thread(storage.abort_multipart_uploads, bucket, [upload], client=self._client)

    async def abort_stale(self, bucket: str, older_than_seconds: int, now: datetime) -> int:
        ttl = timedelta(seconds=older_than_seconds)
        return await UploadSweeper(self._client, bucket, ttl).sweep(now)


async def prepare_buckets(settings: CommonSettings, origins: list[str], ttl_seconds: int) -> None:
    """Where the server supports them: incomplete uploads of the input bucket expire (its
    lifecycle rule), and browsers may PUT to it and read the outputs (CORS); best effort."""
    client = storage.get_s3_client(settings)
    ttl = timedelta(seconds=ttl_seconds)
    await UploadSweeper(client, settings.s3_bucket_in, ttl).expire_by_rule()
    if not origins:
        return
    for bucket, methods in (
        (settings.s3_bucket_in, ["PUT", "GET", "HEAD"]),
        (settings.s3_bucket_out, ["GET", "HEAD"]),
    ):
        try:
            if not await asyncio.to_thread(allow_browsers, client, bucket, origins, methods):
                log.info("the S3 server has no bucket CORS; configure it there (README)")
        except (BotoCoreError, ClientError, OSError) as exc:
            log.warning("could not set CORS on bucket %s: %s", bucket, exc)


def allow_browsers(client: S3Client, bucket: str, origins: list[str], methods: list[str]) -> bool:
    """Put MPR's CORS rule beside the bucket's others; False when the server has no CORS."""
    ours: CORSRuleTypeDef = {
        "ID": CORS_RULE_ID,
        "AllowedOrigins": origins,
        "AllowedMethods": methods,
        "AllowedHeaders": CORS_ALLOWED_HEADERS,
        "ExposeHeaders": CORS_EXPOSED_HEADERS,
        "MaxAgeSeconds": CORS_MAX_AGE_SECONDS,
    }
    try:
        try:
            rules: list[Any] = list(client.get_bucket_cors(Bucket=bucket).get("CORSRules", []))
        except ClientError as exc:
            if _code(exc) != "NoSuchCORSConfiguration":
                raise
            rules = []
        if ours in rules:
            return True
        others = [rule for rule in rules if rule.get("ID") != CORS_RULE_ID]
        client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [*others, ours]})
    except ClientError as exc:
        if _code(exc) in {"NotImplemented", "MethodNotAllowed", "UnsupportedOperation"}:
            return False
        raise
    return True
