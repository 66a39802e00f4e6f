"""Ports: what the catalog needs from the outside world. Adapters implement them; unit tests
pass the fakes in tests/unit/catalog/fakes.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, Self

from mpr_catalog.domain import ACTIVE, AssetState, ObjectInfo
from mpr_catalog.probe import ProbeOutcome
from mpr_shared.contracts import Message


@dataclass(frozen=True, slots=True)
class NewAsset:
    """A row to insert; a conflict on (bucket, key) means someone else was first."""

    id: uuid.UUID
    bucket: str
    key: str
    media_type: str
    size: int
    etag: str
    sequencer: str | None = None
    status: str = ACTIVE
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AssetChange:
    """A compare-and-set update: it applies only while the row still equals ``expected``."""

    expected: AssetState
    size: int
    etag: str
    status: str
    sequencer: str | None
    deleted_at: datetime | None = None
    reprobe: bool = False  # new content: probe again from scratch


class AssetRepository(Protocol):
    """Assets of the catalog; every write is bulk and conflict-safe."""

    async def find(self, bucket: str, keys: Sequence[str]) -> dict[str, AssetState]:
        """Stored states of ``keys`` (missing keys are absent from the result)."""
        ...

    async def get(self, asset_id: uuid.UUID) -> AssetState | None: ...

    async def insert(self, assets: Sequence[NewAsset]) -> set[str]:
        """Insert what is not there yet; returns the keys this call inserted."""
        ...

    async def apply(self, changes: Sequence[AssetChange]) -> set[uuid.UUID]:
        """Apply compare-and-set changes; returns the ids whose row now holds the change."""
        ...

    async def save_probe(self, asset: AssetState, outcome: ProbeOutcome) -> bool:
        """Store a probe of ``asset`` if its content is unchanged and still pending."""
        ...

    async def pending_probes(self, bucket: str) -> list[uuid.UUID]:
        """Active assets still waiting for a probe, oldest first."""
        ...

    async def active_before(self, bucket: str, before: datetime) -> list[AssetState]:
        """Active assets not written since ``before``."""
        ...


class UnitOfWork(Protocol):
    """One transaction: asset changes and the messages they cause commit together."""

    assets: AssetRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: Any) -> None: ...

    async def emit(self, messages: Iterable[Message]) -> None:
        """Add messages to the outbox, in this transaction."""
        ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class ObjectLister(Protocol):
    """Lists supported media objects of a bucket, a page at a time."""

    def pages(
        self, bucket: str, prefix: str, page_size: int
    ) -> AsyncIterator[list[ObjectInfo]]: ...


class MediaProber(Protocol):
    """Runs ffprobe on an object; raises ProbeFailed (unreadable) or ProbeUnavailable (retry)."""

    async def probe(self, bucket: str, key: str) -> dict[str, Any]:
        """ffprobe's JSON (format and streams)."""
        ...


class ProbeQueue(Protocol):
    """Where registered assets wait for their probe."""

    def submit(self, asset_ids: Iterable[uuid.UUID]) -> None: ...
