"""What an asset is, which keys the catalog registers, and what a listed page changes.

Pure logic: the application feeds it facts (listed objects, stored asset states) and writes
the rows and changes it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mpr_shared.keys import InvalidKey, check_key
from mpr_shared.media import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, MediaType

ACTIVE = "active"
DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object as S3 reports it (a listing entry or a create notification)."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class AssetState:
    """The stored state of an asset that decisions depend on."""

    id: uuid.UUID
    bucket: str
    key: str
    media_type: str
    size: int
    etag: str
    status: str
    sequencer: str | None
    probe_status: str
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


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


@dataclass(frozen=True, slots=True)
class RefusedKey:
    """A listed or notified key the catalog will not register, and why."""

    key: str
    reason: str


def media_type_of(key: str) -> MediaType | None:
    """``mpr_shared.media.media_type`` without pathlib (a scan calls it per object)."""
    # A key ending in '/' is a folder marker, never media.
    name = key.rpartition("/")[2]
    dot = name.rfind(".")
    if dot <= 0:
        return None
    ext = name[dot:].lower()
    if ext in VIDEO_EXTENSIONS:
        return MediaType.VIDEO
    if ext in AUDIO_EXTENSIONS:
        return MediaType.AUDIO
    return None


def normalize_etag(etag: str | None) -> str:
    """ETags without the quotes S3 puts around them in some responses."""
    return (etag or "").strip().strip('"')


def key_refusal(key: str) -> str | None:
    """Why the catalog does not register ``key`` (the shared S3 key rules), or None."""
    # A key that hides what it says (bidi overrides, zero-width or control characters) would
    # reach every API, job and event as an asset; S3 accepts such keys, MPR does not.
    try:
        check_key(key)
    except InvalidKey as exc:
        return str(exc)
    return None


def new_asset(
    bucket: str,
    obj: ObjectInfo,
    *,
    sequencer: str | None = None,
    status: str = ACTIVE,
    deleted_at: datetime | None = None,
) -> NewAsset:
    """A fresh asset row for a listed or notified object."""
    return NewAsset(
        id=uuid.uuid4(),
        bucket=bucket,
        key=obj.key,
        media_type=str(media_type_of(obj.key)),
        size=obj.size,
        etag=obj.etag,
        sequencer=sequencer,
        status=status,
        deleted_at=deleted_at,
    )


def touch(asset: AssetState, sequencer: str) -> AssetChange:
    """Same content (or still gone): only the sequencer moves forward."""
    return AssetChange(asset, asset.size, asset.etag, asset.status, sequencer, asset.deleted_at)


def content_change(asset: AssetState, obj: ObjectInfo, sequencer: str | None = None) -> AssetChange:
    """New content under a known key (changed or back again): active, probe again."""
    return AssetChange(
        asset, obj.size, obj.etag, ACTIVE, sequencer or asset.sequencer, None, reprobe=True
    )


def removal(asset: AssetState, sequencer: str | None, at: datetime) -> AssetChange:
    """The object is gone: the asset is marked deleted (its jobs keep their history)."""
    return AssetChange(asset, asset.size, asset.etag, DELETED, sequencer, at)


def renewed(asset: AssetState, obj: ObjectInfo) -> NewAsset:
    """The asset as it is after new content arrived under its key (for its events)."""
    return NewAsset(asset.id, asset.bucket, asset.key, asset.media_type, obj.size, obj.etag)


@dataclass(slots=True)
class PagePlan:
    """What one page of a listing changes."""

    new: list[ObjectInfo] = field(default_factory=list)
    reactivated: list[tuple[AssetState, ObjectInfo]] = field(default_factory=list)
    changed: list[tuple[AssetState, ObjectInfo]] = field(default_factory=list)
    unchanged: int = 0


def plan_page(
    objects: Sequence[ObjectInfo], known: Mapping[str, AssetState], started_at: datetime
) -> PagePlan:
    """Classify listed objects against stored assets."""
    # A row written after the listing started came from a notification fresher than the
    # listing, so the scan leaves it alone.
    plan = PagePlan()
    for obj in objects:
        current = known.get(obj.key)
        if current is None:
            plan.new.append(obj)
        elif current.updated_at >= started_at:
            plan.unchanged += 1
        elif not current.active:
            plan.reactivated.append((current, obj))
        elif (current.etag, current.size) != (obj.etag, obj.size):
            plan.changed.append((current, obj))
        else:
            plan.unchanged += 1
    return plan
