"""Ports: what the application needs from the outside, as Protocols (fakes in unit tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Self
from uuid import UUID

from mpr_gateway.domain.assets import AssetRecord
from mpr_gateway.domain.executors import Executor
from mpr_gateway.domain.failures import FailureReason
from mpr_gateway.domain.jobs import JobRecord, JobState, Transition
from mpr_gateway.domain.uploads import StoredPart, UploadRecord, UploadStatus
from mpr_gateway.domain.workers import QueueDepth, WindowFigures, WorkerRecord
from mpr_shared.contracts import Message, ScanResult


@dataclass(frozen=True, slots=True)
class JobFilter:
    status: str | None = None
    kind: str | None = None
    asset_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class AssetFilter:
    media_type: str | None = None
    status: str | None = None
    probe_status: str | None = None
    prefix: str | None = None
    q: str | None = None


class DuplicateIdempotencyKey(Exception):
    """Another request committed a job with the same idempotency key first."""


class JobRepository(Protocol):
    async def get(self, job_id: UUID) -> JobRecord | None: ...
    async def by_idempotency_key(self, key: str) -> JobRecord | None: ...
    def add(self, job: JobRecord) -> None: ...
    async def transition(
        self, job_id: UUID, expected: JobState, transition: Transition, now: datetime
    ) -> bool:
        """Apply ``transition`` only if the job is still at ``expected`` (compare-and-set)."""
        ...

    async def page(
        self, filters: JobFilter, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[JobRecord]:
        """Newest first, strictly after the (created_at, id) keyset position."""
        ...

    async def for_assets(self, asset_ids: Sequence[UUID], limit: int) -> list[JobRecord]:
        """Up to ``limit`` newest jobs of each asset, in one query."""
        ...


class AssetRepository(Protocol):
    async def get(self, asset_id: UUID) -> AssetRecord | None: ...
    async def by_key(self, bucket: str, key: str) -> AssetRecord | None: ...
    async def many(self, asset_ids: Sequence[UUID]) -> list[AssetRecord]: ...
    async def page(
        self, filters: AssetFilter, after: tuple[str, UUID] | None, limit: int
    ) -> list[AssetRecord]:
        """By key, strictly after the (key, id) keyset position."""
        ...


class Outbox(Protocol):
    """Messages saved in the unit of work's transaction; the relay publishes them later."""

    def add(self, *messages: Message, via: Executor = Executor.RABBITMQ) -> None:
        """``via`` the job's executor: a ProcessMedia or CancelJob for Step Functions is
        dispatched by the Step Functions relay (StartExecution, StopExecution)."""
        ...


class UnitOfWork(Protocol):
    """One transaction: the job row and the messages it causes commit together."""

    @property
    def jobs(self) -> JobRepository: ...
    @property
    def assets(self) -> AssetRepository: ...
    @property
    def uploads(self) -> UploadRepository: ...
    @property
    def outbox(self) -> Outbox: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: Any) -> None: ...
    async def commit(self) -> None:
        """Raises DuplicateIdempotencyKey when the idempotency key is taken."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class Scanner(Protocol):
    async def scan(self, prefix: str) -> ScanResult:
        """Ask the catalog to scan; raises Unavailable when it cannot answer."""
        ...


class SourceObjects(Protocol):
    async def exists(self, bucket: str, key: str) -> bool: ...


class Presigner(Protocol):
    def url(self, bucket: str, key: str) -> str:
        """A presigned GET URL, computed locally (no network)."""
        ...


class Telemetry(Protocol):
    """What the job use cases report (Prometheus in production)."""

    def job_created(self, job: JobRecord, origin: str) -> None: ...
    def event_applied(self, event_type: str, outcome: str) -> None: ...
    def job_finished(self, job: JobRecord, failure: FailureReason | None) -> None:
        """``job`` reached a final state (``failure`` says why, when it failed)."""
        ...


class WorkerRegistry(Protocol):
    """The ``workers`` table (the gateway is its only writer)."""

    async def record(self, worker: WorkerRecord) -> None:
        """Insert or update the replica's row, unless a later heartbeat is already stored."""
        ...

    async def forget(self, worker_id: str, beat_before: datetime) -> None:
        """Delete the replica's row if its latest heartbeat is older than ``beat_before``."""
        ...

    async def expire(self, seen_before: datetime) -> int:
        """Delete every replica last seen before ``seen_before``; returns how many."""
        ...

    async def live(self, seen_since: datetime) -> list[WorkerRecord]:
        """Replicas seen since ``seen_since``, by id."""
        ...


class QueueProbe(Protocol):
    async def depth(self, queue: str) -> QueueDepth:
        """Ready messages and consumers; raises Unavailable when the broker cannot say."""
        ...


class UnackedCounter(Protocol):
    async def unacked(self, queue: str) -> int | None:
        """Delivered but unacknowledged messages, or None when unknown."""
        ...


class JobFigures(Protocol):
    """Aggregates over ``jobs`` for the dashboard."""

    async def active(self) -> dict[str, int]:
        """Jobs queued and running now, by status."""
        ...

    async def finished_since(self, since: datetime) -> WindowFigures: ...


# ---------------------------------------------------------------------------- uploads


class UploadRepository(Protocol):
    async def get(self, upload_id: UUID) -> UploadRecord | None: ...
    async def add(self, upload: UploadRecord) -> None: ...
    async def finish(self, upload_id: UUID, status: UploadStatus, now: datetime) -> bool:
        """Move a pending upload to ``status`` (compare-and-set); False if it was not pending."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        """Pending uploads whose time ran out, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    size: int
    etag: str


class UploadStorage(Protocol):
    """The input bucket as uploads need it; URLs are signed for the public endpoint."""

    async def head(self, bucket: str, key: str) -> StoredObject | None: ...
    def put_url(self, bucket: str, key: str, size: int, expires: int) -> str:
        """A presigned PUT of exactly ``size`` bytes (Content-Length is signed)."""
        ...

    async def start_multipart(self, bucket: str, key: str, content_type: str | None) -> str:
        """CreateMultipartUpload; returns the UploadId."""
        ...

    def part_url(
        self, bucket: str, key: str, upload_id: str, number: int, size: int, expires: int
    ) -> str:
        """A presigned UploadPart of exactly ``size`` bytes (Content-Length is signed)."""
        ...

    async def parts(self, bucket: str, key: str, upload_id: str) -> list[StoredPart] | None:
        """The parts uploaded so far (ListParts); None when the upload no longer exists."""
        ...

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[StoredPart]
    ) -> str:
        """CompleteMultipartUpload; returns the object's ETag."""
        ...

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone counts as aborted."""
        ...

    async def abort_stale(self, bucket: str, older_than_seconds: int, now: datetime) -> int:
        """Abort every multipart upload of ``bucket`` started that long before ``now``;
        returns how many."""
        ...
