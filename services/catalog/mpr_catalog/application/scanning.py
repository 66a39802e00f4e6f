"""Scans of the input bucket: a page per transaction, coalesced per prefix, bounded in number."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from mpr_catalog.application import messages
from mpr_catalog.application.ports import ObjectLister, UnitOfWorkFactory
from mpr_catalog.application.registration import Registered, Registrar, utcnow
from mpr_catalog.domain.assets import AssetState, RefusedKey, removal
from mpr_shared.contracts import ScanResult

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ScanReport:
    """What one scan did: the counts of its reply, plus what it removed and refused."""

    found: int = 0
    registered: int = 0
    updated: int = 0
    skipped: int = 0
    removed: int = 0
    files: list[str] = field(default_factory=list)
    refused: list[RefusedKey] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, page: Registered) -> None:
        self.found += page.found
        self.registered += len(page.new) + len(page.reactivated)
        self.updated += len(page.updated)
        self.skipped += page.unchanged
        self.files += [a.key for a in page.new] + [a.key for a in page.reactivated]
        self.refused += page.refused

    def result(self) -> ScanResult:
        """The ScanBucket reply."""
        return ScanResult(
            found=self.found,
            registered=self.registered,
            skipped=self.skipped,
            updated=self.updated,
            files=self.files,
        )


_ScanKey = tuple[str, bool]  # (prefix, remove_missing)


class Scanner:
    """Scans one bucket. A scan asked for while the same one runs waits for it and shares its
    report; at most ``concurrency`` scans list the bucket at once, the others wait their turn."""

    def __init__(
        self,
        lister: ObjectLister,
        registrar: Registrar,
        uow: UnitOfWorkFactory,
        *,
        batch_size: int,
        concurrency: int,
    ) -> None:
        self._lister = lister
        self._registrar = registrar
        self._uow = uow
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[_ScanKey, asyncio.Task[ScanReport]] = {}

    @property
    def bucket(self) -> str:
        return self._registrar.bucket

    async def scan(
        self,
        prefix: str = "",
        *,
        remove_missing: bool = False,
        envelope: messages.Envelope | None = None,
    ) -> ScanReport:
        """Register new and changed objects under ``prefix`` (or join the same scan running)."""
        # remove_missing (full scans only) also marks assets whose object is gone.
        key = (prefix, remove_missing)
        task = self._running.get(key)
        if task is None or task.done():
            run = self._bounded(prefix, remove_missing, envelope or {})
            task = asyncio.create_task(run, name=f"scan:{prefix}")
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # One requester giving up (its consumer stopping) must not cancel the others' scan.
        return await asyncio.shield(task)

    async def stop(self) -> None:
        """Cancel the scans still running (shutdown); their finished pages stay committed."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._running.clear()

    def _forget(self, key: _ScanKey, task: asyncio.Task[ScanReport]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    async def _bounded(
        self, prefix: str, remove_missing: bool, envelope: messages.Envelope
    ) -> ScanReport:
        async with self._slots:
            return await self._scan(prefix, remove_missing, envelope)

    async def _scan(
        self, prefix: str, remove_missing: bool, envelope: messages.Envelope
    ) -> ScanReport:
        started, clock = utcnow(), time.perf_counter()
        report = ScanReport()
        seen: set[str] | None = set() if remove_missing and not prefix else None
        async for page in self._lister.pages(self.bucket, prefix, self._batch_size):
            if seen is not None:
                seen.update(obj.key for obj in page)
            report.add(await self._registrar.register(page, seen_at=started, envelope=envelope))
        if seen is not None:
            report.removed = await self._remove_missing(seen, started, envelope)
        report.seconds = time.perf_counter() - clock
        log.info(
            "scan of %s/%s: found %d, registered %d, updated %d, skipped %d, removed %d, "
            "refused %d",
            self.bucket,
            prefix,
            report.found,
            report.registered,
            report.updated,
            report.skipped,
            report.removed,
            len(report.refused),
        )
        return report

    async def _remove_missing(
        self, seen: set[str], started: datetime, envelope: messages.Envelope
    ) -> int:
        async with self._uow() as uow:
            candidates = await uow.assets.active_before(self.bucket, started)
        missing = [asset for asset in candidates if asset.key not in seen]
        removed = 0
        for start in range(0, len(missing), self._batch_size):
            removed += await self._remove(missing[start : start + self._batch_size], envelope)
        return removed

    async def _remove(self, batch: list[AssetState], envelope: messages.Envelope) -> int:
        async with self._uow() as uow:
            now = utcnow()
            applied = await uow.assets.apply([removal(a, a.sequencer, now) for a in batch])
            uow.outbox.add(*(messages.removed(a, envelope) for a in batch if a.id in applied))
            await uow.commit()
        return len(applied)
