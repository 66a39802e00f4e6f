"""In-memory fakes for the gateway's ports (repository, unit of work, scanner, S3)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from mpr_gateway.application.ports import AssetFilter, DuplicateIdempotencyKey, JobFilter
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.jobs import JobRecord, JobState, Transition
from mpr_shared.contracts import Message, ScanResult
from mpr_shared.outbox import outbox_row


class FakeStore:
    """What the fake database holds; shared by every unit of work."""

    def __init__(self) -> None:
        self.jobs: dict[UUID, JobRecord] = {}
        self.assets: dict[UUID, AssetRecord] = {}
        self.outbox: list[tuple[str, Message, int | None]] = []
        self.commits = 0

    def messages(self, kind: type) -> list[Message]:
        return [m for _, m, _ in self.outbox if isinstance(m, kind)]


class FakeJobs:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.added: list[JobRecord] = []
        self.updates: dict[UUID, JobRecord] = {}

    def _current(self, job_id: UUID) -> JobRecord | None:
        return self.updates.get(job_id) or self.store.jobs.get(job_id)

    async def get(self, job_id: UUID) -> JobRecord | None:
        job = self._current(job_id)
        return copy.deepcopy(job) if job else None

    async def by_idempotency_key(self, key: str) -> JobRecord | None:
        for job in self.store.jobs.values():
            if job.idempotency_key == key:
                return copy.deepcopy(job)
        return None

    def add(self, job: JobRecord) -> None:
        self.added.append(job)

    async def transition(
        self, job_id: UUID, expected: JobState, transition: Transition, now: datetime
    ) -> bool:
        job = self._current(job_id)
        if job is None or job.state != expected:
            return False
        self.updates[job_id] = replace(job, **transition.columns(), updated_at=now)
        return True

    async def page(self, filters: JobFilter, after, limit: int) -> list[JobRecord]:
        rows = sorted(self.store.jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        rows = [
            j
            for j in rows
            if (filters.status is None or j.status == filters.status)
            and (filters.kind is None or j.kind == filters.kind)
            and (filters.asset_id is None or j.asset_id == filters.asset_id)
            and (after is None or (j.created_at, j.id) < after)
        ]
        return rows[:limit]

    async def for_assets(self, asset_ids, limit: int) -> list[JobRecord]:
        out = []
        for asset_id in asset_ids:
            out += await self.page(JobFilter(asset_id=asset_id), None, limit)
        return out


class FakeAssets:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def get(self, asset_id: UUID) -> AssetRecord | None:
        return self.store.assets.get(asset_id)

    async def by_key(self, bucket: str, key: str) -> AssetRecord | None:
        return next(
            (a for a in self.store.assets.values() if (a.bucket, a.key) == (bucket, key)), None
        )

    async def many(self, asset_ids) -> list[AssetRecord]:
        return [self.store.assets[i] for i in asset_ids if i in self.store.assets]

    async def page(self, filters: AssetFilter, after, limit: int) -> list[AssetRecord]:
        rows = sorted(self.store.assets.values(), key=lambda a: (a.key, a.id))
        rows = [
            a
            for a in rows
            if (filters.q is None or filters.q in a.key)
            and (filters.prefix is None or a.key.startswith(filters.prefix))
            and (after is None or (a.key, a.id) > after)
        ]
        return rows[:limit]


class FakeOutbox:
    def __init__(self) -> None:
        self.pending: list[tuple[str, Message, int | None]] = []

    def command(self, message: Message) -> None:
        self._add(message)

    def event(self, message: Message) -> None:
        self._add(message)

    def _add(self, message: Message) -> None:
        row = outbox_row(message)  # the real row builder: exchange and priority
        self.pending.append((row["exchange"], message, row["priority"]))


class FakeUnitOfWork:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def __aenter__(self) -> FakeUnitOfWork:
        self.jobs = FakeJobs(self.store)
        self.assets = FakeAssets(self.store)
        self.outbox = FakeOutbox()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        pass  # uncommitted changes are dropped, like a rollback

    async def commit(self) -> None:
        for job in self.jobs.added:
            if job.idempotency_key and any(
                j.idempotency_key == job.idempotency_key for j in self.store.jobs.values()
            ):
                raise DuplicateIdempotencyKey(job.idempotency_key)
        for job in self.jobs.added:
            self.store.jobs[job.id] = job
        self.store.jobs.update(self.jobs.updates)
        self.store.outbox += self.outbox.pending
        self.jobs.added, self.jobs.updates, self.outbox.pending = [], {}, []
        self.store.commits += 1


class FakeScanner:
    def __init__(self, result: ScanResult | Exception) -> None:
        self.result = result
        self.prefixes: list[str] = []

    async def scan(self, prefix: str) -> ScanResult:
        self.prefixes.append(prefix)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class FakePresigner:
    def url(self, bucket: str, key: str) -> str:
        return f"https://s3.test/{bucket}/{key}?sig=1"


class FakeSources:
    def __init__(self, existing: set[tuple[str, str]] | None = None) -> None:
        self.existing = existing or set()

    async def exists(self, bucket: str, key: str) -> bool:
        return (bucket, key) in self.existing


def asset(
    key: str, *, duration: float | None = 10.0, media_type: str = "video", **kw
) -> AssetRecord:
    now = datetime.now(UTC)
    return AssetRecord(
        id=kw.pop("id", uuid4()),
        bucket=kw.pop("bucket", "in"),
        key=key,
        media_type=media_type,
        size_bytes=1000,
        etag="e",
        status=kw.pop("status", "active"),
        probe_status="ok",
        created_at=now,
        updated_at=now,
        duration_seconds=duration,
        **kw,
    )
