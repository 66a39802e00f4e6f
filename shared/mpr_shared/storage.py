"""S3 storage module: the spec's API, one code path for MinIO, SeaweedFS and AWS S3.

Only ``S3_ENDPOINT_URL`` differs between environments; unset means real AWS S3.
Functions are synchronous (boto3); async callers wrap them in ``asyncio.to_thread``.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from mpr_shared.aws import aws_client
from mpr_shared.media import MEDIA_EXTENSIONS, extension
from mpr_shared.settings import CommonSettings, common_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import LifecycleRuleTypeDef
else:
    S3Client = Any
    LifecycleRuleTypeDef = dict

# Read from settings on first use (module __getattr__ below), never at import time.
BUCKET_IN: str
BUCKET_OUT: str

__all__ = [
    "BUCKET_IN",
    "BUCKET_OUT",
    "MultipartUpload",
    "S3Object",
    "abort_multipart_uploads",
    "abort_stale_multipart_uploads",
    "content_type_of",
    "download_file",
    "download_to_temp",
    "expire_incomplete_multipart_uploads",
    "get_presigned_url",
    "get_s3_client",
    "list_multipart_uploads",
    "list_objects",
    "upload_file",
]

# Managed multipart: parts of 16 MiB, several in flight.
# https://boto3.amazonaws.com/v1/documentation/api/latest/reference/customizations/s3.html
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=16 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
    use_threads=True,
)


@dataclass(frozen=True, slots=True)
class S3Object:
    """One listed object."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None


def _client_config() -> Config:
    return Config(
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
        # Path-style works on MinIO, SeaweedFS and AWS alike; virtual-host style needs DNS.
        s3={"addressing_style": "path"},
        connect_timeout=5,
        read_timeout=60,
    )


def _build_client(settings: CommonSettings, endpoint_url: str | None) -> S3Client:
    return cast(
        S3Client, aws_client("s3", settings, endpoint_url=endpoint_url, config=_client_config())
    )


@lru_cache(maxsize=8)
def _cached_client(settings: CommonSettings, public: bool) -> S3Client:
    endpoint = settings.s3_endpoint_url
    if public and settings.s3_public_endpoint_url:
        endpoint = settings.s3_public_endpoint_url
    return _build_client(settings, endpoint)


def get_s3_client(settings: CommonSettings | None = None, *, public: bool = False) -> S3Client:
    """A boto3 S3 client for MinIO/SeaweedFS (endpoint set) or AWS (endpoint unset).

    ``public=True`` signs against ``S3_PUBLIC_ENDPOINT_URL`` so URLs work from outside.
    """
    return _cached_client(settings or common_settings(), public)


def list_objects(
    bucket: str | None = None,
    prefix: str = "",
    extensions: Iterable[str] | None = MEDIA_EXTENSIONS,
    *,
    client: S3Client | None = None,
    page_size: int = 1000,
) -> Iterator[S3Object]:
    """Yield every object under ``prefix`` whose extension is in ``extensions``.

    Pages through ListObjectsV2, so buckets of any size work in constant memory.
    ``extensions=None`` yields every object. Matching is case-insensitive.
    """
    s3 = client or get_s3_client()
    wanted = None if extensions is None else {e.lower() for e in extensions}
    paginator = s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket or common_settings().s3_bucket_in,
        Prefix=prefix,
        PaginationConfig={"PageSize": page_size},
    )
    for page in pages:
        for item in page.get("Contents", ()):
            key = item["Key"]
            if key.endswith("/") or (wanted is not None and extension(key) not in wanted):
                continue
            yield S3Object(
                key=key,
                size=int(item.get("Size", 0)),
                etag=str(item.get("ETag", "")).strip('"'),
                last_modified=item.get("LastModified"),
            )


def download_file(
    key: str,
    local_path: str | os.PathLike[str],
    bucket: str | None = None,
    *,
    client: S3Client | None = None,
) -> Path:
    """Download ``key`` to ``local_path`` (managed, parallel ranged GETs for big objects)."""
    path = Path(local_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (client or get_s3_client()).download_file(
        bucket or common_settings().s3_bucket_in, key, str(path), Config=TRANSFER_CONFIG
    )
    return path


def download_to_temp(
    key: str,
    bucket: str | None = None,
    *,
    dir: str | os.PathLike[str] | None = None,
    client: S3Client | None = None,
) -> Path:
    """Download ``key`` into a new temp file that keeps the key's extension.

    The caller owns the file and must delete it.
    """
    fd, name = tempfile.mkstemp(suffix=extension(key), prefix="mpr-", dir=dir)
    os.close(fd)
    try:
        return download_file(key, name, bucket, client=client)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def upload_file(
    local_path: str | os.PathLike[str],
    key: str,
    bucket: str | None = None,
    *,
    content_type: str | None = None,
    client: S3Client | None = None,
) -> int:
    """Upload a local file (managed multipart above 16 MiB); returns its size in bytes."""
    path = Path(local_path)
    guessed = content_type or content_type_of(path.name)
    extra = {"ContentType": guessed} if guessed else {}
    (client or get_s3_client()).upload_file(
        str(path),
        bucket or common_settings().s3_bucket_out,
        key,
        ExtraArgs=extra,
        Config=TRANSFER_CONFIG,
    )
    return path.stat().st_size


def get_presigned_url(
    key: str,
    bucket: str | None = None,
    expires_in: int = 3600,
    *,
    client: S3Client | None = None,
) -> str:
    """A presigned GET URL for ``key``, signed for the public endpoint."""
    s3 = client or get_s3_client(public=True)
    return s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket or common_settings().s3_bucket_out, "Key": key},
        ExpiresIn=expires_in,
    )


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime | None


# The lifecycle rule MPR owns in a bucket; other rules of the bucket are left as they are.
ABORT_RULE_ID = "mpr-abort-incomplete-multipart-uploads"
# What a server without lifecycle support answers (SeaweedFS versions, some gateways).
_NO_LIFECYCLE = frozenset({"NotImplemented", "MethodNotAllowed", "UnsupportedOperation"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def list_multipart_uploads(
    bucket: str, prefix: str = "", *, client: S3Client | None = None
) -> Iterator[MultipartUpload]:
    """Every incomplete multipart upload under ``prefix``, page by page."""
    pages = (client or get_s3_client()).get_paginator("list_multipart_uploads")
    for page in pages.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Uploads", ()):
            if "Key" in item and "UploadId" in item:
                yield MultipartUpload(item["Key"], item["UploadId"], item.get("Initiated"))


def abort_multipart_uploads(
    bucket: str, uploads: Iterable[MultipartUpload], *, client: S3Client | None = None
) -> int:
    """Abort each upload (one already gone counts as aborted); returns how many."""
    s3 = client or get_s3_client()
    aborted = 0
    for upload in uploads:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)
        except ClientError as exc:
            if _error_code(exc) != "NoSuchUpload":
                raise
        aborted += 1
    return aborted


def abort_stale_multipart_uploads(
    bucket: str,
    older_than: timedelta,
    *,
    prefix: str = "",
    client: S3Client | None = None,
    now: datetime | None = None,
) -> int:
    """Abort the incomplete uploads under ``prefix`` started more than ``older_than`` ago:
    the sweep for servers without lifecycle rules (SeaweedFS). Returns how many."""
    cutoff = (now or datetime.now(UTC)) - older_than
    stale = [
        upload
        for upload in list_multipart_uploads(bucket, prefix, client=client)
        if upload.initiated is not None and upload.initiated < cutoff
    ]
    return abort_multipart_uploads(bucket, stale, client=client)


def expire_incomplete_multipart_uploads(
    bucket: str, days: int, *, client: S3Client | None = None
) -> bool:
    """Have the server abort incomplete uploads ``days`` after they start (a lifecycle rule,
    merged with the bucket's others); False when the server has no lifecycle support.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html
    """
    s3 = client or get_s3_client()
    ours: LifecycleRuleTypeDef = {
        "ID": ABORT_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": max(1, days)},
    }
    try:
        rules = _lifecycle_rules(s3, bucket)
        if ours in rules:
            return True
        others = [rule for rule in rules if rule.get("ID") != ABORT_RULE_ID]
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [*others, ours]}
        )
    except ClientError as exc:
        if _error_code(exc) in _NO_LIFECYCLE:
            return False
        raise
    return True


def _lifecycle_rules(s3: S3Client, bucket: str) -> list[LifecycleRuleTypeDef]:
    try:
        found = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        if _error_code(exc) == "NoSuchLifecycleConfiguration":
            return []
        raise
    # The rules as read are the rules to write back (the same shape on the wire).
    return cast("list[LifecycleRuleTypeDef]", found.get("Rules", []))


def content_type_of(name: str) -> str | None:
    """The Content-Type an upload of a file called ``name`` gets (None: S3's default)."""
    return mimetypes.guess_type(name)[0] or _extra_types(Path(name).suffix)


def _extra_types(suffix: str) -> str | None:
    return {
        ".m3u8": "application/vnd.apple.mpegurl",
        ".ts": "video/mp2t",
        ".m4s": "video/iso.segment",
        ".webm": "video/webm",
        ".mkv": "video/x-matroska",
        ".flac": "audio/flac",
        ".m4a": "audio/mp4",
    }.get(suffix.lower())


def __getattr__(name: str) -> str:
    # BUCKET_IN / BUCKET_OUT read settings when first used, not at import time.
    if name == "BUCKET_IN":
        return common_settings().s3_bucket_in
    if name == "BUCKET_OUT":
        return common_settings().s3_bucket_out
    raise AttributeError(name)
