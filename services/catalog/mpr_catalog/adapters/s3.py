"""S3 adapters: a paging lister that overlaps listing with the database work, a presigner and
the readiness check."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from mpr_catalog.domain.assets import ObjectInfo, media_type_of, normalize_etag
from mpr_shared import storage
from mpr_shared.health import Check

_END = object()


class S3ObjectLister:
    """ObjectLister on ``mpr_shared.storage.list_objects`` (ListObjectsV2 pagination)."""

    # boto3 blocks, so a worker thread walks the listing and hands pages over through a small
    # queue: the next page is fetched while the caller writes the previous one.

    def __init__(self, client: Any, *, read_ahead: int = 2) -> None:
        self._client = client
        self._read_ahead = read_ahead

    async def pages(
        self, bucket: str, prefix: str, page_size: int
    ) -> AsyncIterator[list[ObjectInfo]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self._read_ahead)
        stop = threading.Event()

        def hand_over(item: Any) -> bool:
            """Put ``item`` on the queue from the worker thread; False once the caller left."""
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while not stop.is_set():
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    future.result(timeout=0.2)
                    return True
            future.cancel()
            return False

        worker = loop.run_in_executor(None, self._walk, bucket, prefix, page_size, hand_over)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await worker

    def _walk(
        self, bucket: str, prefix: str, page_size: int, hand_over: Callable[[Any], bool]
    ) -> None:
        """List in this (worker) thread, handing over full pages, then _END or the error."""
        try:
            page: list[ObjectInfo] = []
            # extensions=None: filtering here with media_type_of is cheaper than pathlib.
            listing = storage.list_objects(
                bucket, prefix, None, client=self._client, page_size=page_size
            )
            for obj in listing:
                if media_type_of(obj.key) is None:
                    continue
                page.append(ObjectInfo(obj.key, obj.size, normalize_etag(obj.etag)))
                if len(page) >= page_size:
                    if not hand_over(page):
                        return
                    page = []
            if page and not hand_over(page):
                return
            hand_over(_END)
        except Exception as exc:  # surfaces in the caller's task
            hand_over(exc)


class Presigner:
    """Presigned GET URLs on the internal endpoint (the catalog's ffprobe reads them)."""

    def __init__(self, client: Any, *, expires_in: int = 900) -> None:
        self._client = client
        self._expires_in = expires_in

    def url(self, bucket: str, key: str) -> str:
        # Presigning is local computation (no request), so it is safe on the event loop.
        return storage.get_presigned_url(key, bucket, self._expires_in, client=self._client)


def bucket_check(client: Any, bucket: str) -> Check:
    """A readiness check: the input bucket answers HeadBucket."""

    async def check() -> None:
        await asyncio.to_thread(client.head_bucket, Bucket=bucket)

    return check
