"""Asset decisions: notifications never move an asset backwards; scans classify pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mpr_catalog.domain.assets import (
    ACTIVE,
    DELETED,
    AssetState,
    ObjectInfo,
    key_refusal,
    media_type_of,
    plan_page,
)
from mpr_catalog.domain.notifications import (
    Action,
    ChangeKind,
    ObjectChange,
    decide,
    normalize_sequencer,
)
from mpr_shared.media import media_type

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def state(**fields) -> AssetState:
    base = {
        "id": uuid.uuid4(),
        "bucket": "b",
        "key": "a.mp4",
        "media_type": "video",
        "size": 10,
        "etag": "e1",
        "status": ACTIVE,
        "sequencer": normalize_sequencer("10"),
        "probe_status": "ok",
        "updated_at": T0,
    }
    return AssetState(**(base | fields))


def change(kind: ChangeKind, seq: str, *, size: int = 10, etag: str = "e1") -> ObjectChange:
    return ObjectChange(
        kind, f"s3:Object{kind.value}", "b", "a.mp4", normalize_sequencer(seq), size, etag
    )


CREATED, REMOVED = ChangeKind.CREATED, ChangeKind.REMOVED


@pytest.mark.parametrize(
    ("event", "current", "action"),
    [
        (change(CREATED, "11"), None, Action.REGISTER),
        (change(REMOVED, "11"), None, Action.TOMBSTONE),
        (change(CREATED, "10"), state(), Action.IGNORE),  # duplicate / redelivered
        (change(CREATED, "0F"), state(), Action.IGNORE),  # older, arrived late
        (change(REMOVED, "0F"), state(), Action.IGNORE),
        (change(CREATED, "11"), state(), Action.TOUCH),  # same content again
        (change(CREATED, "11", etag="e2"), state(), Action.UPDATE),
        (change(CREATED, "11", size=11), state(), Action.UPDATE),
        (change(REMOVED, "11"), state(), Action.REMOVE),
        (change(REMOVED, "11"), state(status=DELETED), Action.TOUCH),
        (change(CREATED, "11"), state(status=DELETED), Action.REACTIVATE),
        (change(CREATED, "0F"), state(status=DELETED), Action.IGNORE),  # never resurrect
        (change(CREATED, "01"), state(sequencer=None), Action.TOUCH),  # known from a scan
        (change(CREATED, "01", etag="x"), state(sequencer=None), Action.UPDATE),
    ],
)
def test_decide(event: ObjectChange, current: AssetState | None, action: Action) -> None:
    assert decide(event, current).action is action


def test_out_of_order_delete_then_create_keeps_the_asset_gone() -> None:
    delete, create = change(REMOVED, "20"), change(CREATED, "1F")
    assert decide(delete, None).action is Action.TOMBSTONE
    tombstone = state(status=DELETED, sequencer=delete.sequencer, size=0, etag="")
    assert decide(create, tombstone).action is Action.IGNORE


def test_plan_page_classifies_objects() -> None:
    started = T0 + timedelta(minutes=1)
    known = {
        "same.mp4": state(key="same.mp4"),
        "changed.mp4": state(key="changed.mp4"),
        "back.mp4": state(key="back.mp4", status=DELETED, deleted_at=T0),
        "fresh.mp4": state(key="fresh.mp4", etag="from-a-notification", updated_at=started),
    }
    page = [
        ObjectInfo("new.mp4", 1, "n"),
        ObjectInfo("same.mp4", 10, "e1"),
        ObjectInfo("changed.mp4", 10, "e2"),
        ObjectInfo("back.mp4", 10, "e1"),
        ObjectInfo("fresh.mp4", 10, "older-listing"),
    ]
    plan = plan_page(page, known, started)
    assert [o.key for o in plan.new] == ["new.mp4"]
    assert [a.key for a, _ in plan.changed] == ["changed.mp4"]
    assert [a.key for a, _ in plan.reactivated] == ["back.mp4"]
    assert plan.unchanged == 2  # same.mp4, and fresh.mp4 which a notification wrote meanwhile


@pytest.mark.parametrize(
    "key",
    [
        "a.mp4",
        "dir/B.MKV",
        "x.WebM",
        "deep/er/track.M4A",
        "notes.txt",
        "noext",
        ".mp4",
        "dir/.mp4",
        "a.",
        "a.b.mov",
        "dir.mp4/file",
        "dir.mp4/file.wav",
        "ünï cödé/🎬.flac",
        "trailing dot.mp4.",
    ],
)
def test_fast_media_type_agrees_with_the_shared_rule(key: str) -> None:
    assert media_type_of(key) == media_type(key)


def test_folder_markers_are_not_media() -> None:
    assert media_type_of("videos.mp4/") is None


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("clip\u202e4pm.mp4", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("cl\u200bip.mp4", "U+200B ZERO WIDTH SPACE"),
        ("line\nbreak.mp4", "U+000A"),
        ("/absolute.mp4", "must not start with '/'"),
        ("up/../x.mp4", "'..' segments"),
    ],
)
def test_keys_that_break_the_shared_rules_are_refused_with_the_reason(key: str, named: str) -> None:
    reason = key_refusal(key)
    assert reason is not None and named in reason


def test_ordinary_and_international_keys_are_accepted() -> None:
    for key in ("a.mp4", "dir/with space.mov", "ünïcödé/日本語 🎬.mp4", "a&b=c;d,e.mp4"):
        assert key_refusal(key) is None, key
