"""Keeping a bucket clear of incomplete multipart uploads, for every service that writes one.

S3 keeps (and bills) the parts of an upload nobody completed or aborted. Where the server has
lifecycle rules, AbortIncompleteMultipartUpload does it; SeaweedFS has none, so the services
also sweep: the transcoder its output bucket, the gateway its input bucket (presigned uploads).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from mpr_shared import storage

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


class UploadSweeper:
    """Keeps ``bucket`` clear of incomplete multipart uploads older than ``ttl``."""

    def __init__(self, client: S3Client, bucket: str, ttl: timedelta) -> None:
        self.client = client
        self.bucket = bucket
        self.ttl = ttl

    async def expire_by_rule(self) -> None:
        """Ask the server to abort them itself (its lifecycle rule), where it can."""
        days = max(1, math.ceil(self.ttl / timedelta(days=1)))
        try:
            done = await asyncio.to_thread(
                storage.expire_incomplete_multipart_uploads, self.bucket, days, client=self.client
            )
        except (BotoCoreError, ClientError, OSError) as exc:
            log.warning("could not set the lifecycle rule of %s: %s", self.bucket, exc)
            return
        if not done:
            log.info("%s has no lifecycle rules: the sweep alone aborts old uploads", self.bucket)

    async def sweep(self, now: datetime | None = None) -> int:
        """Abort the incomplete uploads older than the TTL (at ``now``); returns how many, 0
        when S3 failed (never raises: the next sweep tries again)."""
        try:
            aborted = await asyncio.to_thread(
                storage.abort_stale_multipart_uploads,
                self.bucket,
                self.ttl,
                client=self.client,
                now=now,
            )
        except (BotoCoreError, ClientError, OSError) as exc:
            log.warning("could not sweep the incomplete uploads of %s: %s", self.bucket, exc)
            return 0
        if aborted:
            log.info(
                "aborted %d incomplete upload(s) older than %s in %s",
                aborted,
                self.ttl,
                self.bucket,
            )
        return aborted
