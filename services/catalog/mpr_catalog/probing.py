"""Background probing with bounded concurrency, so a scan or a notification answers fast.

The queue lives in memory; the database is the durable record (probe_status "pending"), so
whatever a restart interrupts is submitted again at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from mpr_catalog.probe import ProbeUnavailable

log = logging.getLogger(__name__)


class ProbeScheduler:
    """Runs ``probe(asset_id)`` for submitted ids, ``concurrency`` at a time, once per id queued."""

    def __init__(
        self,
        probe: Callable[[uuid.UUID], Awaitable[Any]],
        *,
        concurrency: int,
        attempts: int = 3,
        backoff_seconds: float = 2.0,
        on_result: Callable[[Any], None] | None = None,
    ) -> None:
        self._probe = probe
        self._concurrency = concurrency
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._on_result = on_result
        self._queue: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        self._queued: set[uuid.UUID] = set()
        self._workers: list[asyncio.Task[None]] = []

    def submit(self, asset_ids: Iterable[uuid.UUID]) -> None:
        for asset_id in asset_ids:
            if asset_id not in self._queued:
                self._queued.add(asset_id)
                self._queue.put_nowait(asset_id)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"probe-{n}") for n in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Stop now; probes cut short stay pending in the database."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    async def join(self) -> None:
        """Wait until everything submitted so far has been probed (tests, benchmarks)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            asset_id = await self._queue.get()
            # Leave the set first: a change that arrives during the probe queues it again.
            self._queued.discard(asset_id)
            try:
                await self._run(asset_id)
            finally:
                self._queue.task_done()

    async def _run(self, asset_id: uuid.UUID) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                result = await self._probe(asset_id)
            except ProbeUnavailable as exc:
                if attempt == self._attempts:
                    log.warning("probe of %s postponed (still pending): %s", asset_id, exc)
                    return
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            except Exception:
                log.exception("probe of %s failed unexpectedly; it stays pending", asset_id)
                return
            else:
                if self._on_result:
                    self._on_result(result)
                return
