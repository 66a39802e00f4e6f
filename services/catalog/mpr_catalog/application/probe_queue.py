"""The probe queue: background probing with bounded concurrency, so a scan or a notification
answers fast.

The queue lives in memory; the database is the durable record (probe_status "pending"), so
whatever a restart interrupts is submitted again at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable

from mpr_catalog.application.ports import MediaUnreachable
from mpr_catalog.domain.probe import ProbeOutcome

log = logging.getLogger(__name__)


class ProbeScheduler:
    """Runs ``probe(asset_id)`` for submitted ids, ``concurrency`` at a time, once per id queued."""

    def __init__(
        self,
        probe: Callable[[uuid.UUID], Awaitable[ProbeOutcome | None]],
        *,
        concurrency: int,
        attempts: int,
        # Called after each asset leaves the queue: its outcome (None: nothing stored) and
        # the backlog left.
        on_result: Callable[[ProbeOutcome | None, int], None],
        backoff_seconds: float = 2.0,
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

    async def _work(self) -> None:
        while True:
            asset_id = await self._queue.get()
            # Leave the set first: a change that arrives during the probe queues it again.
            self._queued.discard(asset_id)
            outcome = await self._run(asset_id)
            self._on_result(outcome, self.backlog)

    async def _run(self, asset_id: uuid.UUID) -> ProbeOutcome | None:
        """The stored outcome; None when nothing was stored (nothing to do, or try later)."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._probe(asset_id)
            except MediaUnreachable as exc:
                if attempt == self._attempts:
                    log.warning("probe of %s postponed (still pending): %s", asset_id, exc)
                    return None
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            except Exception:
                log.exception("probe of %s failed unexpectedly; it stays pending", asset_id)
                return None
        return None
