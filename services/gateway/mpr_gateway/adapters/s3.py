"""S3 adapters: source existence, presigned download URLs and the readiness check."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from botocore.exceptions import ClientError

from mpr_shared.settings import CommonSettings
from mpr_shared.storage import get_presigned_url, get_s3_client


class S3Sources:
    def __init__(self, settings: CommonSettings) -> None:
        self._client = get_s3_client(settings)

    async def exists(self, bucket: str, key: str) -> bool:
        try:
            await asyncio.to_thread(self._client.head_object, Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True


class CachedPresigner:
    """Presigned GET URLs signed for S3_PUBLIC_ENDPOINT_URL, computed locally.

    Signing costs ~100 µs of botocore machinery; a URL is reused for a small slice of its
    lifetime, so every URL handed out stays valid for at least 90% of ``expires``.
    """

    def __init__(self, settings: CommonSettings, expires: int, max_entries: int = 10_000) -> None:
        self._client = get_s3_client(settings, public=True)
        self._expires = expires
        self._reuse = expires / 10
        self._max = max_entries
        self._cache: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def url(self, bucket: str, key: str) -> str:
        now = time.monotonic()
        hit = self._cache.get((bucket, key))
        if hit and now - hit[0] < self._reuse:
            return hit[1]
        url = get_presigned_url(key, bucket, self._expires, client=self._client)
        self._cache[(bucket, key)] = (now, url)
        self._cache.move_to_end((bucket, key))
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return url


class S3Buckets:
    """The input and output buckets answer (HEAD bucket)."""

    def __init__(self, settings: CommonSettings) -> None:
        self._client = get_s3_client(settings)
        self._buckets = (settings.s3_bucket_in, settings.s3_bucket_out)

    async def check(self) -> None:
        for bucket in self._buckets:
            await asyncio.to_thread(self._client.head_bucket, Bucket=bucket)
