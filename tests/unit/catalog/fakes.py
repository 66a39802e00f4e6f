"""In-memory fakes of the catalog's ports, with the real adapters' semantics: unique (bucket,
key), compare-and-set updates, filters honoured, and transactions whose writes nobody else sees
before commit (and nobody at all after a rollback).

Each fake is assigned to its Protocol at the bottom, so mypy checks them against each other.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self

from mpr_catalog.application.ports import (
    AssetRepository,
    MediaProber,
    ObjectLister,
    Outbox,
    ProbeQueue,
    UnitOfWork,
    UnitOfWorkFactory,
)
from mpr_catalog.domain.assets import ACTIVE, AssetChange, AssetState, NewAsset, ObjectInfo
from mpr_catalog.domain.probe import ProbeOutcome, UnreadableMedia
from mpr_shared.contracts import Message, ProbeStatus
from tests.unit.catalog.samples import BUCKET


@dataclass(frozen=True)
class StoredAsset:
    """One row of the fake assets table."""

    state: AssetState
    probe: dict[str, Any] | None = None
    probe_error: str | None = None
    duration: float | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeDatabase:
    """What the database holds after commits."""

    assets: dict[uuid.UUID, StoredAsset] = field(default_factory=dict)
    outbox: list[Message] = field(default_factory=list)
    commits: int = 0

    def by_key(self, key: str) -> StoredAsset | None:
        return next((a for a in self.assets.values() if a.state.key == key), None)

    def messages(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.outbox if isinstance(m, kind)]


class FakeAssets:
    """The assets a transaction sees: the committed rows with its own writes over them."""

    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self.written: dict[uuid.UUID, StoredAsset] = {}

    def _rows(self) -> dict[uuid.UUID, StoredAsset]:
        return self._database.assets | self.written

    async def find(self, bucket: str, keys: Sequence[str]) -> dict[str, AssetState]:
        wanted = set(keys)
        rows = self._rows().values()
        return {
            r.state.key: r.state for r in rows if r.state.bucket == bucket and r.state.key in wanted
        }

    async def get(self, asset_id: uuid.UUID) -> AssetState | None:
        row = self._rows().get(asset_id)
        return row.state if row else None

    async def insert(self, assets: Sequence[NewAsset]) -> set[str]:
        taken = {(r.state.bucket, r.state.key) for r in self._rows().values()}
        inserted: set[str] = set()
        for new in assets:
            if (new.bucket, new.key) not in taken:
                taken.add((new.bucket, new.key))
                self.written[new.id] = StoredAsset(_state_of(new))
                inserted.add(new.key)
        return inserted

    async def apply(self, changes: Sequence[AssetChange]) -> set[uuid.UUID]:
        applied: set[uuid.UUID] = set()
        for change in changes:
            row = self._rows().get(change.expected.id)
            if row is not None and _same(row.state, change.expected):
                self.written[row.state.id] = _changed(row, change)
                applied.add(row.state.id)
        return applied

    async def save_probe(self, asset: AssetState, outcome: ProbeOutcome) -> bool:
        row = self._rows().get(asset.id)
        if row is None or not _probe_applies(row.state, asset):
            return False
        state = replace(row.state, probe_status=outcome.status.value, updated_at=_now())
        self.written[asset.id] = replace(
            row,
            state=state,
            probe=outcome.summary,
            probe_error=outcome.error,
            duration=outcome.duration,
        )
        return True

    async def pending_probes(self, bucket: str) -> list[uuid.UUID]:
        rows = sorted(self._rows().values(), key=lambda r: r.created_at)
        return [
            r.state.id
            for r in rows
            if r.state.bucket == bucket
            and r.state.status == ACTIVE
            and r.state.probe_status == ProbeStatus.PENDING
        ]

    async def active_before(self, bucket: str, before: datetime) -> list[AssetState]:
        return [
            r.state
            for r in self._rows().values()
            if r.state.bucket == bucket and r.state.status == ACTIVE and r.state.updated_at < before
        ]


def _now() -> datetime:
    return datetime.now(UTC)


def _state_of(new: NewAsset) -> AssetState:
    return AssetState(
        id=new.id,
        bucket=new.bucket,
        key=new.key,
        media_type=new.media_type,
        size=new.size,
        etag=new.etag,
        status=new.status,
        sequencer=new.sequencer,
        probe_status=ProbeStatus.PENDING.value,
        updated_at=_now(),
        deleted_at=new.deleted_at,
    )


def _same(state: AssetState, expected: AssetState) -> bool:
    """The compare of compare-and-set: what the SQL UPDATE's WHERE clause compares."""
    return (state.size, state.etag, state.status, state.sequencer) == (
        expected.size,
        expected.etag,
        expected.status,
        expected.sequencer,
    )


def _changed(row: StoredAsset, change: AssetChange) -> StoredAsset:
    state = replace(
        row.state,
        size=change.size,
        etag=change.etag,
        status=change.status,
        sequencer=change.sequencer,
        deleted_at=change.deleted_at,
        updated_at=_now(),
    )
    if not change.reprobe:
        return replace(row, state=state)
    state = replace(state, probe_status=ProbeStatus.PENDING.value)
    return replace(row, state=state, probe=None, probe_error=None, duration=None)


def _probe_applies(state: AssetState, probed: AssetState) -> bool:
    """Same content, still active and pending: what the SQL save_probe's WHERE clause says."""
    return (
        (state.etag, state.size) == (probed.etag, probed.size)
        and state.status == ACTIVE
        and state.probe_status == ProbeStatus.PENDING
    )


class FakeOutbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def add(self, *messages: Message) -> None:
        self.messages.extend(messages)


class FakeUnitOfWork:
    """A transaction: its writes and messages reach the database on commit, else vanish."""

    assets: FakeAssets
    outbox: FakeOutbox

    def __init__(self, database: FakeDatabase) -> None:
        self.database = database

    async def __aenter__(self) -> Self:
        self.assets = FakeAssets(self.database)
        self.outbox = FakeOutbox()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.assets.written.clear()
        self.outbox.messages.clear()

    async def commit(self) -> None:
        self.database.assets |= self.assets.written
        self.database.outbox += self.outbox.messages
        self.database.commits += 1
        self.assets.written = {}
        self.outbox.messages = []


class FakeUnitOfWorkFactory:
    def __init__(self, database: FakeDatabase) -> None:
        self.database = database

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.database)


class FakeLister:
    """One bucket as a dict of key → (size, etag); any other bucket is empty."""

    def __init__(
        self, objects: dict[str, tuple[int, str]] | None = None, bucket: str = BUCKET
    ) -> None:
        self.objects = dict(objects or {})
        self.bucket = bucket

    async def pages(
        self, bucket: str, prefix: str, page_size: int
    ) -> AsyncIterator[list[ObjectInfo]]:
        listed = [
            ObjectInfo(key, size, etag)
            for key, (size, etag) in sorted(self.objects.items())
            if bucket == self.bucket and key.startswith(prefix)
        ]
        for start in range(0, len(listed), page_size):
            yield listed[start : start + page_size]


class FakeProber:
    """Answers with canned ffprobe JSON (or raises a canned exception) per key of one bucket."""

    def __init__(
        self, answers: dict[str, dict[str, Any] | Exception] | None = None, bucket: str = BUCKET
    ) -> None:
        self.answers = dict(answers or {})
        self.bucket = bucket
        self.calls: list[str] = []

    async def probe(self, bucket: str, key: str) -> dict[str, Any]:
        self.calls.append(key)
        if bucket != self.bucket or key not in self.answers:
            raise UnreadableMedia("object not found in the bucket")  # what ffprobe says
        answer = self.answers[key]
        if isinstance(answer, Exception):
            raise answer
        return answer


class RecordingQueue:
    def __init__(self) -> None:
        self.submitted: list[uuid.UUID] = []

    def submit(self, asset_ids: Iterable[uuid.UUID]) -> None:
        self.submitted.extend(asset_ids)


def ffprobe_json(
    *, width: int = 320, height: int = 240, duration: float = 2.0, audio: bool = True
) -> dict[str, Any]:
    """What ffprobe prints for a small H.264/AAC MP4."""
    streams: list[dict[str, Any]] = [
        {
            "index": 0,
            "codec_name": "h264",
            "profile": "Constrained Baseline",
            "codec_type": "video",
            "width": width,
            "height": height,
            "pix_fmt": "yuv420p",
            "r_frame_rate": "25/1",
            "avg_frame_rate": "25/1",
            "duration": str(duration),
            "bit_rate": "250000",
            "disposition": {"default": 1, "attached_pic": 0},
        }
    ]
    if audio:
        streams.append(
            {
                "index": 1,
                "codec_name": "aac",
                "profile": "LC",
                "codec_type": "audio",
                "sample_rate": "48000",
                "channels": 1,
                "channel_layout": "mono",
                "duration": str(duration),
                "bit_rate": "69000",
            }
        )
    return {
        "streams": streams,
        "format": {
            "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
            "format_long_name": "QuickTime / MOV",
            "duration": str(duration),
            "size": "71234",
            "bit_rate": "284936",
        },
    }


# Checked by mypy (the catalog's tests are in its files): each fake is its port.
_database = FakeDatabase()
_assets: AssetRepository = FakeAssets(_database)
_outbox: Outbox = FakeOutbox()
_uow: UnitOfWork = FakeUnitOfWork(_database)
_uow_factory: UnitOfWorkFactory = FakeUnitOfWorkFactory(_database)
_lister: ObjectLister = FakeLister()
_prober: MediaProber = FakeProber()
_queue: ProbeQueue = RecordingQueue()
