"""Bucket notifications: what a MinIO or AWS event message says, in which order its records
count (the S3 sequencer), and what each record does to the stored asset.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from mpr_catalog.domain.assets import AssetState, ObjectInfo, normalize_etag


class InvalidNotification(ValueError):
    """A bucket notification that can never be applied (bad JSON, wrong shape, missing field)."""


# ---------------------------------------------------------------------------- sequencer

SEQUENCER_WIDTH = 32
_HEX = frozenset(string.hexdigits)


def normalize_sequencer(raw: str) -> str:
    """A fixed-width, upper-case hex sequencer, so string order equals numeric order."""
    # AWS: "left pad the shorter value with zeros, then compare lexicographically".
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
    value = raw.strip()
    if not value or not set(value) <= _HEX:
        raise InvalidNotification(f"sequencer {raw!r} is not a hexadecimal string")
    value = value.upper().lstrip("0")
    if len(value) > SEQUENCER_WIDTH:
        raise InvalidNotification(f"sequencer {raw!r} is longer than {SEQUENCER_WIDTH} digits")
    return value.rjust(SEQUENCER_WIDTH, "0")


def is_newer(sequencer: str, stored: str | None) -> bool:
    """True when ``sequencer`` (normalized) comes after the stored one (None: nothing seen)."""
    return stored is None or sequencer > normalize_sequencer(stored)


# ---------------------------------------------------------------------------- notifications


class ChangeKind(StrEnum):
    CREATED = "created"
    REMOVED = "removed"


# Writes that put new content under a key. MinIO also sends PutTagging, DeleteTagging,
# PutRetention and PutLegalHold as s3:ObjectCreated:*, which change no content.
_CREATE_EVENTS = frozenset(
    {"ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy"}
    | {"ObjectCreated:CompleteMultipartUpload"}
)
# Events after which a listing no longer shows the key. A delete marker hides the object;
# ObjectRemoved:NoOP (MinIO: delete of a missing key) changes nothing.
_REMOVE_EVENTS = frozenset(
    {
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
        "ObjectRemoved:DeleteAllVersions",
        "LifecycleExpiration:Delete",
        "LifecycleExpiration:DeleteMarkerCreated",
    }
)


def event_kind(event_name: str) -> ChangeKind | None:
    """CREATED, REMOVED or None (ignored) for an S3 event name; MinIO prefixes 's3:', AWS not."""
    name = event_name.removeprefix("s3:")
    if name in _CREATE_EVENTS:
        return ChangeKind.CREATED
    if name in _REMOVE_EVENTS:
        return ChangeKind.REMOVED
    return None


def decode_key(raw: str) -> str:
    """An object key from a notification: URL-encoded, '+' for space (MinIO and AWS alike)."""
    return unquote_plus(raw)


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One applicable record of a bucket notification."""

    kind: ChangeKind
    event_name: str
    bucket: str
    key: str
    sequencer: str
    size: int = 0
    etag: str = ""

    @property
    def object(self) -> ObjectInfo:
        return ObjectInfo(key=self.key, size=self.size, etag=self.etag)


@dataclass(frozen=True, slots=True)
class IgnoredRecord:
    """A record that is valid but not ours to apply (access, tagging, restore, …)."""

    event_name: str
    bucket: str | None
    key: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A parsed notification message: its applicable changes and what it ignored."""

    changes: tuple[ObjectChange, ...] = ()
    ignored: tuple[IgnoredRecord, ...] = ()
    test_event: bool = False


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _S3Bucket(_Model):
    name: str = Field(min_length=1)


class _S3Object(_Model):
    key: str = Field(min_length=1)
    # MinIO omits size and eTag when they are zero/empty (json omitempty), so both default.
    size: NonNegativeInt = 0
    eTag: str = ""
    sequencer: str = Field(min_length=1)


class _S3Entity(_Model):
    bucket: _S3Bucket
    object: _S3Object


class _Record(_Model):
    eventName: str = Field(min_length=1)
    s3: _S3Entity


def parse_notification(body: bytes | str) -> Notification:
    """Parse a MinIO (AMQP target) or AWS S3 event message; raises InvalidNotification."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidNotification(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidNotification(f"body is a JSON {type(data).__name__}, expected an object")
    if "Records" not in data:
        if data.get("Event") == "s3:TestEvent":
            return Notification(test_event=True)
        raise InvalidNotification("no 'Records' in the notification")
    records = data["Records"]
    if not isinstance(records, list):
        raise InvalidNotification(f"'Records' is a JSON {type(records).__name__}, expected a list")
    changes: list[ObjectChange] = []
    ignored: list[IgnoredRecord] = []
    for index, raw in enumerate(records):
        item = _parse_record(index, raw)
        if isinstance(item, ObjectChange):
            changes.append(item)
        else:
            ignored.append(item)
    return Notification(changes=tuple(changes), ignored=tuple(ignored))


def _parse_record(index: int, raw: Any) -> ObjectChange | IgnoredRecord:
    where = f"Records[{index}]"
    if not isinstance(raw, dict):
        raise InvalidNotification(f"{where} is a JSON {type(raw).__name__}, expected an object")
    name = raw.get("eventName")
    if not isinstance(name, str) or not name:
        raise InvalidNotification(f"{where}.eventName: missing or not a string")
    kind = event_kind(name)
    if kind is None:
        return _ignored(name, raw)
    try:
        record = _Record.model_validate(raw)
    except ValidationError as exc:
        raise InvalidNotification(f"{where}: {_describe(exc)}") from exc
    obj = record.s3.object
    try:
        sequencer = normalize_sequencer(obj.sequencer)
    except InvalidNotification as exc:
        raise InvalidNotification(f"{where}.s3.object.sequencer: {exc}") from exc
    return ObjectChange(
        kind=kind,
        event_name=name,
        bucket=record.s3.bucket.name,
        key=decode_key(obj.key),
        sequencer=sequencer,
        size=obj.size,
        etag=normalize_etag(obj.eTag),
    )


def _ignored(name: str, raw: dict[str, Any]) -> IgnoredRecord:
    """A record of an event type the catalog does not apply, with what it names (for logs)."""
    s3 = raw.get("s3") if isinstance(raw.get("s3"), dict) else {}
    bucket = (s3.get("bucket") or {}).get("name") if isinstance(s3, dict) else None
    key = (s3.get("object") or {}).get("key") if isinstance(s3, dict) else None
    return IgnoredRecord(
        name, bucket, decode_key(key) if isinstance(key, str) else None, "event type"
    )


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


# ---------------------------------------------------------------------------- decisions


class Action(StrEnum):
    REGISTER = "register"  # unknown key: insert, probe, AssetRegistered
    REACTIVATE = "reactivate"  # deleted asset exists again: new content, AssetRegistered
    UPDATE = "update"  # new ETag or size: re-probe, AssetUpdated
    TOUCH = "touch"  # same content (or still gone): only remember the sequencer
    REMOVE = "remove"  # mark deleted, keep job history, AssetRemoved
    TOMBSTONE = "tombstone"  # removal of an unknown key: remember it so older creates lose
    IGNORE = "ignore"  # stale, duplicate, redelivered, another bucket or not media
    REFUSE = "refuse"  # a key that breaks the shared key rules: never stored


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""


def decide(change: ObjectChange, current: AssetState | None) -> Decision:
    """What a notification does to the stored asset; never moves an asset backwards."""
    if current is not None and not is_newer(change.sequencer, current.sequencer):
        return Decision(Action.IGNORE, f"sequencer not newer than {current.sequencer}")
    if change.kind is ChangeKind.REMOVED:
        if current is None:
            return Decision(Action.TOMBSTONE, "removal of an unknown key")
        return Decision(Action.REMOVE if current.active else Action.TOUCH, "removed")
    if current is None:
        return Decision(Action.REGISTER, "new object")
    if not current.active:
        return Decision(Action.REACTIVATE, "object exists again")
    if (current.etag, current.size) != (change.etag, change.size):
        return Decision(Action.UPDATE, "new content")
    return Decision(Action.TOUCH, "same content")
