"""In-memory fakes of the catalog's ports, with the same semantics as the real adapters:
unique (bucket, key), compare-and-set updates, and transactions that only show on commit."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self

from mpr_catalog.domain import ACTIVE, AssetState, ObjectInfo
from mpr_catalog.ports import AssetChange, NewAsset
from mpr_catalog.probe import ProbeOutcome
from mpr_shared.contracts import Message, ProbeStatus


@dataclass
class StoredAsset:
    state: AssetState
    probe: dict[str, Any] | None = None
    probe_error: str | None = None
    duration: float | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeStore:
    """What the database holds after commits."""

    assets: dict[uuid.UUID, StoredAsset] = field(default_factory=dict)
    outbox: list[Message] = field(default_factory=list)
    commits: int = 0

    def by_key(self, key: str) -> StoredAsset | None:
        return next((a for a in self.assets.values() if a.state.key == key), None)

    def messages(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.outbox if isinstance(m, kind)]


class FakeRepository:
    def __init__(self, assets: dict[uuid.UUID, StoredAsset]) -> None:
        self.assets = assets

    async def find(self, bucket: str, keys: Sequence[str]) -> dict[str, AssetState]:
        wanted = set(keys)
        return {
            a.state.key: a.state
            for a in self.assets.values()
            if a.state.bucket == bucket and a.state.key in wanted
        }

    async def get(self, asset_id: uuid.UUID) -> AssetState | None:
        stored = self.assets.get(asset_id)
        return stored.state if stored else None

    async def insert(self, assets: Sequence[NewAsset]) -> set[str]:
        taken = {(a.state.bucket, a.state.key) for a in self.assets.values()}
        inserted: set[str] = set()
        now = datetime.now(UTC)
        for new in assets:
            if (new.bucket, new.key) in taken:
                continue
            taken.add((new.bucket, new.key))
            self.assets[new.id] = StoredAsset(
                AssetState(
                    id=new.id,
                    bucket=new.bucket,
                    key=new.key,
                    media_type=new.media_type,
                    size=new.size,
                    etag=new.etag,
                    status=new.status,
                    sequencer=new.sequencer,
                    probe_status=ProbeStatus.PENDING.value,
                    updated_at=now,
                    deleted_at=new.deleted_at,
                )
            )
            inserted.add(new.key)
        return inserted

    async def apply(self, changes: Sequence[AssetChange]) -> set[uuid.UUID]:
        applied: set[uuid.UUID] = set()
        now = datetime.now(UTC)
        for change in changes:
            stored = self.assets.get(change.expected.id)
            if stored is None or not _matches(stored.state, change.expected):
                continue
            stored.state = replace(
                stored.state,
                size=change.size,
                etag=change.etag,
                status=change.status,
                sequencer=change.sequencer,
                deleted_at=change.deleted_at,
                updated_at=now,
                probe_status=ProbeStatus.PENDING.value
                if change.reprobe
                else stored.state.probe_status,
            )
            if change.reprobe:
                stored.probe = stored.probe_error = stored.duration = None
            applied.add(stored.state.id)
        return applied

    async def save_probe(self, asset: AssetState, outcome: ProbeOutcome) -> bool:
        stored = self.assets.get(asset.id)
        if (
            stored is None
            or (stored.state.etag, stored.state.size) != (asset.etag, asset.size)
            or stored.state.status != ACTIVE
            or stored.state.probe_status != ProbeStatus.PENDING
        ):
            return False
        stored.state = replace(
            stored.state, probe_status=outcome.status.value, updated_at=datetime.now(UTC)
        )
        stored.probe, stored.probe_error, stored.duration = (
            outcome.summary,
            outcome.error,
            outcome.duration,
        )
        return True

    async def pending_probes(self, bucket: str) -> list[uuid.UUID]:
        return [
            a.state.id
            for a in sorted(self.assets.values(), key=lambda a: a.created_at)
            if a.state.bucket == bucket
            and a.state.status == ACTIVE
            and a.state.probe_status == ProbeStatus.PENDING
        ]

    async def active_before(self, bucket: str, before: datetime) -> list[AssetState]:
        return [
            a.state
            for a in self.assets.values()
            if a.state.bucket == bucket and a.state.status == ACTIVE and a.state.updated_at < before
        ]


def _matches(state: AssetState, expected: AssetState) -> bool:
    return (state.size, state.etag, state.status, state.sequencer) == (
        expected.size,
        expected.etag,
        expected.status,
        expected.sequencer,
    )


class FakeUnitOfWork:
    """Works on a copy of the store; commit() makes the copy the store."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def __aenter__(self) -> Self:
        self._assets = copy.deepcopy(self.store.assets)
        self._outbox: list[Message] = []
        self.assets = FakeRepository(self._assets)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._assets, self._outbox = {}, []

    async def emit(self, messages: Iterable[Message]) -> None:
        self._outbox.extend(messages)

    async def commit(self) -> None:
        self.store.assets = self._assets
        self.store.outbox.extend(self._outbox)
        self.store.commits += 1
        self._assets = copy.deepcopy(self._assets)
        self._outbox = []


class FakeLister:
    """A bucket as a dict of key → (size, etag)."""

    def __init__(self, objects: dict[str, tuple[int, str]] | None = None) -> None:
        self.objects = dict(objects or {})

    async def pages(
        self, bucket: str, prefix: str, page_size: int
    ) -> AsyncIterator[list[ObjectInfo]]:
        listed = [
            ObjectInfo(key, size, etag)
            for key, (size, etag) in sorted(self.objects.items())
            if key.startswith(prefix)
        ]
        for start in range(0, len(listed), page_size):
            yield listed[start : start + page_size]


class FakeProber:
    """Answers with canned ffprobe JSON (or raises a canned exception) per key."""

    def __init__(self, answers: dict[str, dict[str, Any] | Exception] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[str] = []

    async def probe(self, bucket: str, key: str) -> dict[str, Any]:
        self.calls.append(key)
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
