"""Ports: what the catalog's use cases need from the outside world.

The adapters (mpr_catalog.adapters) implement them; unit tests pass the fakes in
tests/unit/catalog/fakes.py, which mypy checks against these Protocols.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, Self

from mpr_catalog.domain.assets import AssetChange, AssetState, NewAsset, ObjectInfo
from mpr_catalog.domain.probe import ProbeOutcome
from mpr_shared.contracts import Message


class MediaUnreachable(Exception):
    """The object could not be read right now (S3 down, timeout); try again later."""


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


class Outbox(Protocol):
    """Messages caused by the unit of work's changes; they commit with them."""

    def add(self, *messages: Message) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: asset changes and the messages they cause commit together."""

    @property
    def assets(self) -> AssetRepository: ...

    @property
    def outbox(self) -> Outbox: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None:
        """Roll back whatever was not committed."""
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
    """Runs ffprobe on an object; raises UnreadableMedia, or MediaUnreachable (try later)."""

    async def probe(self, bucket: str, key: str) -> dict[str, Any]:
        """ffprobe's JSON (format and streams)."""
        ...


class ProbeQueue(Protocol):
    """Where registered assets wait for their probe."""

    def submit(self, asset_ids: Iterable[uuid.UUID]) -> None: ...
