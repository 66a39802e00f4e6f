"""In-memory fakes for the gateway's ports (unit of work, repositories, scanner, S3).

They behave like the SQL adapters where the application can tell: reads see committed data
only (the SQL unit of work reads outside its transaction), a compare-and-set update sees the
committed row plus the unit of work's own updates, every filter filters, and nothing is kept
unless committed. ``CONFORMS`` assigns each fake to its port, so mypy (``make lint``; this file
is in its ``files``) checks them against each other.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Self
from uuid import UUID, uuid4

from mpr_gateway.application.ports import (
    AssetFilter,
    AssetRepository,
    DuplicateIdempotencyKey,
    JobFigures,
    JobFilter,
    JobRepository,
    Outbox,
    Presigner,
    QueueProbe,
    Scanner,
    SourceObjects,
    StoredObject,
    UnackedCounter,
    UnitOfWork,
    UploadRepository,
    UploadStorage,
    WorkerRegistry,
)
from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.executors import Executor
from mpr_gateway.domain.jobs import JobRecord, JobState, Transition
from mpr_gateway.domain.uploads import StoredPart, UploadRecord, UploadStatus
from mpr_gateway.domain.workers import QueueDepth, WindowFigures, WorkerRecord
from mpr_shared.contracts import Message, ProbeStatus, ScanResult
from mpr_shared.outbox import outbox_row


class FakeStore:
    """What the fake database holds; shared by every unit of work."""

    def __init__(self) -> None:
        self.jobs: dict[UUID, JobRecord] = {}
        self.assets: dict[UUID, AssetRecord] = {}
        self.uploads: dict[UUID, UploadRecord] = {}
        self.outbox: list[tuple[str, Message, int | None]] = []
        self.targets: list[tuple[Executor, Message]] = []  # which relay dispatches each row
        self.commits = 0

    def messages(self, kind: type[Message]) -> list[Message]:
        return [m for _, m, _ in self.outbox if isinstance(m, kind)]

    def via(self, executor: Executor) -> list[str]:
        """The types of the committed messages that ``executor``'s relay dispatches."""
        return [type(m).__name__ for target, m in self.targets if target is executor]


def _job_matches(job: JobRecord, filters: JobFilter) -> bool:
    return (
        (filters.status is None or job.status == filters.status)
        and (filters.kind is None or job.kind == filters.kind)
        and (filters.asset_id is None or job.asset_id == filters.asset_id)
    )


class FakeJobs:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.added: list[JobRecord] = []
        self.updates: dict[UUID, JobRecord] = {}

    async def get(self, job_id: UUID) -> JobRecord | None:
        job = self.store.jobs.get(job_id)  # committed only, like the SQL reads
        return copy.deepcopy(job) if job else None

    async def by_idempotency_key(self, key: str) -> JobRecord | None:
        found = (j for j in self.store.jobs.values() if j.idempotency_key == key)
        return copy.deepcopy(next(found, None))

    def add(self, job: JobRecord) -> None:
        self.added.append(job)

    async def transition(
        self, job_id: UUID, expected: JobState, transition: Transition, now: datetime
    ) -> bool:
        # The UPDATE runs in the transaction: it sees this unit of work's own updates.
        job = self.updates.get(job_id) or self.store.jobs.get(job_id)
        if job is None or job.state != expected:
            return False
        self.updates[job_id] = replace(job, **transition.columns(), updated_at=now)
        return True

    async def page(
        self, filters: JobFilter, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[JobRecord]:
        rows = sorted(self.store.jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        rows = [
            j
            for j in rows
            if _job_matches(j, filters) and (after is None or (j.created_at, j.id) < after)
        ]
        return copy.deepcopy(rows[:limit])

    async def for_assets(self, asset_ids: Sequence[UUID], limit: int) -> list[JobRecord]:
        out: list[JobRecord] = []
        for asset_id in asset_ids:
            out += await self.page(JobFilter(asset_id=asset_id), None, limit)
        return out


def _asset_matches(asset: AssetRecord, filters: AssetFilter) -> bool:
    wanted = {
        "media_type": filters.media_type,
        "status": filters.status,
        "probe_status": filters.probe_status,
    }
    return (
        all(value is None or getattr(asset, name) == value for name, value in wanted.items())
        and (filters.prefix is None or asset.key.startswith(filters.prefix))
        and (filters.q is None or filters.q in asset.key)
    )


class FakeAssets:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def get(self, asset_id: UUID) -> AssetRecord | None:
        return self.store.assets.get(asset_id)

    async def by_key(self, bucket: str, key: str) -> AssetRecord | None:
        found = (a for a in self.store.assets.values() if (a.bucket, a.key) == (bucket, key))
        return next(found, None)

    async def many(self, asset_ids: Sequence[UUID]) -> list[AssetRecord]:
        return [self.store.assets[i] for i in asset_ids if i in self.store.assets]

    async def page(
        self, filters: AssetFilter, after: tuple[str, UUID] | None, limit: int
    ) -> list[AssetRecord]:
        rows = sorted(self.store.assets.values(), key=lambda a: (a.key, a.id))
        rows = [
            a
            for a in rows
            if _asset_matches(a, filters) and (after is None or (a.key, a.id) > after)
        ]
        return rows[:limit]


class FakeUploads:
    """Writes land at commit, as the SQL transaction's do."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.pending: dict[UUID, UploadRecord] = {}

    async def get(self, upload_id: UUID) -> UploadRecord | None:
        found = self.store.uploads.get(upload_id)
        return copy.copy(found) if found else None

    async def add(self, upload: UploadRecord) -> None:
        self.pending[upload.id] = copy.copy(upload)

    async def finish(self, upload_id: UUID, status: UploadStatus, now: datetime) -> bool:
        current = self.pending.get(upload_id) or self.store.uploads.get(upload_id)
        if current is None or current.status != UploadStatus.PENDING:
            return False
        self.pending[upload_id] = replace(current, status=status.value, finished_at=now)
        return True

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        rows = sorted(self.store.uploads.values(), key=lambda u: u.created_at)
        return [u for u in rows if u.status == UploadStatus.PENDING and u.expires_at < now][:limit]


class FakeOutbox:
    def __init__(self) -> None:
        self.pending: list[tuple[str, Message, int | None]] = []
        self.targets: list[tuple[Executor, Message]] = []

    def add(self, *messages: Message, via: Executor = Executor.RABBITMQ) -> None:
        for message in messages:
            row = outbox_row(message)  # the real row builder: exchange and priority
            self.pending.append((row["exchange"], message, row["priority"]))
            self.targets.append((via, message))


class FakeUnitOfWork:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.jobs = FakeJobs(store)
        self.assets = FakeAssets(store)
        self.uploads = FakeUploads(store)
        self.outbox = FakeOutbox()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass  # uncommitted changes are dropped with this object, like a rollback

    async def commit(self) -> None:
        for job in self.jobs.added:
            taken = {j.idempotency_key for j in self.store.jobs.values()}
            if job.idempotency_key and job.idempotency_key in taken:
                raise DuplicateIdempotencyKey(job.idempotency_key)
        self.store.jobs.update({job.id: job for job in self.jobs.added})
        self.store.jobs.update(self.jobs.updates)
        self.store.outbox += self.outbox.pending
        self.store.uploads.update(self.uploads.pending)
        self.store.targets += self.outbox.targets
        self.jobs.added, self.jobs.updates = [], {}
        self.outbox.pending, self.outbox.targets = [], []
        self.uploads.pending = {}
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


class FakeUploadStorage:
    """The input bucket: objects, multipart uploads and their parts; URLs name what they sign."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.multipart: dict[str, tuple[str, str, list[StoredPart]]] = {}
        self.aborted: list[str] = []
        self.stale: list[datetime] = []  # when abort_stale was asked (its ``now``)

    async def head(self, bucket: str, key: str) -> StoredObject | None:
        return self.objects.get((bucket, key))

    def put_url(self, bucket: str, key: str, size: int, expires: int) -> str:
        return f"https://s3.test/{bucket}/{key}?put&size={size}&expires={expires}"

    async def start_multipart(self, bucket: str, key: str, content_type: str | None) -> str:
        upload_id = f"mp-{len(self.multipart) + 1}"
        self.multipart[upload_id] = (bucket, key, [])
        return upload_id

    def part_url(
        self, bucket: str, key: str, upload_id: str, number: int, size: int, expires: int
    ) -> str:
        query = f"uploadId={upload_id}&partNumber={number}&size={size}"
        return f"https://s3.test/{bucket}/{key}?{query}"

    def send_part(self, upload_id: str, number: int, size: int) -> None:
        """What a client's PUT to a part URL does."""
        self.multipart[upload_id][2].append(StoredPart(number, size, f"etag-{number}-{size}"))

    async def parts(self, bucket: str, key: str, upload_id: str) -> list[StoredPart] | None:
        found = self.multipart.get(upload_id)
        return list(found[2]) if found else None

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[StoredPart]
    ) -> str:
        del self.multipart[upload_id]
        size = sum(p.size for p in parts)
        self.objects[(bucket, key)] = StoredObject(size, f"etag-{len(parts)}")
        return f"etag-{len(parts)}"

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        self.multipart.pop(upload_id, None)
        self.aborted.append(upload_id)

    async def abort_stale(self, bucket: str, older_than_seconds: int, now: datetime) -> int:
        self.stale.append(now)
        return 0


def asset(
    key: str,
    *,
    duration: float | None = 10.0,
    media_type: str = "video",
    probe_status: ProbeStatus = ProbeStatus.OK,
    **kw: Any,
) -> AssetRecord:
    now = datetime.now(UTC)
    return AssetRecord(
        id=kw.pop("id", uuid4()),
        bucket=kw.pop("bucket", "in"),
        key=key,
        media_type=media_type,
        size_bytes=1000,
        etag=kw.pop("etag", "e"),
        status=kw.pop("status", "active"),
        probe_status=probe_status.value,
        created_at=now,
        updated_at=now,
        duration_seconds=duration,
        **kw,
    )


# Each fake as its port: mypy refuses a fake that drifted from the Protocol it stands for.
_store = FakeStore()
CONFORMS: tuple[
    UnitOfWork,
    JobRepository,
    AssetRepository,
    UploadRepository,
    Outbox,
    Scanner,
    Presigner,
    SourceObjects,
    UploadStorage,
] = (
    FakeUnitOfWork(_store),
    FakeJobs(_store),
    FakeAssets(_store),
    FakeUploads(_store),
    FakeOutbox(),
    FakeScanner(ScanResult(found=0, registered=0, skipped=0, files=[])),
    FakePresigner(),
    FakeSources(),
    FakeUploadStorage(),
)


class FakeWorkers:
    """The workers table: a late heartbeat changes nothing, like the SQL upsert's guard."""

    def __init__(self) -> None:
        self.rows: dict[str, WorkerRecord] = {}

    async def record(self, worker: WorkerRecord) -> None:
        stored = self.rows.get(worker.id)
        if stored is None or stored.beat_at < worker.beat_at:
            self.rows[worker.id] = worker

    async def forget(self, worker_id: str, beat_before: datetime) -> None:
        stored = self.rows.get(worker_id)
        if stored is not None and stored.beat_at <= beat_before:
            del self.rows[worker_id]

    async def expire(self, seen_before: datetime) -> int:
        old = [i for i, w in self.rows.items() if w.last_seen < seen_before]
        for worker_id in old:
            del self.rows[worker_id]
        return len(old)

    async def live(self, seen_since: datetime) -> list[WorkerRecord]:
        return sorted(
            (w for w in self.rows.values() if w.last_seen >= seen_since), key=lambda w: w.id
        )


class FakeQueueProbe:
    def __init__(self, depth: QueueDepth | Exception) -> None:
        self.result = depth

    async def depth(self, queue: str) -> QueueDepth:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class FakeUnacked:
    def __init__(self, count: int | None) -> None:
        self.count = count

    async def unacked(self, queue: str) -> int | None:
        return self.count


class FakeJobFigures:
    """Aggregates computed from a FakeStore's jobs and assets, as the SQL would."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def active(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.store.jobs.values():
            if job.status in ("queued", "running"):
                counts[job.status] = counts.get(job.status, 0) + 1
        return counts

    async def finished_since(self, since: datetime) -> WindowFigures:
        recent = [j for j in self.store.jobs.values() if j.finished_at and j.finished_at >= since]
        counts: dict[str, int] = {}
        for job in recent:
            counts[job.status] = counts.get(job.status, 0) + 1
        done = [j for j in recent if j.status == "completed"]
        speeds = [j.speed for j in done if j.speed is not None]
        sizes = [
            self.store.assets[j.asset_id].size_bytes
            for j in done
            if j.asset_id in self.store.assets
        ]
        return WindowFigures(
            counts,
            statistics.median(speeds) if speeds else None,
            sum(sizes),
            sum(j.bytes_out or 0 for j in done),
        )


CONFORMS_OPERATIONS: tuple[WorkerRegistry, QueueProbe, UnackedCounter, JobFigures] = (
    FakeWorkers(),
    FakeQueueProbe(QueueDepth(0, 0)),
    FakeUnacked(None),
    FakeJobFigures(_store),
)
