"""Applying bucket notifications against fakes: order, duplicates, tombstones, refused keys."""

from __future__ import annotations

from mpr_catalog.application.notifications import BucketNotifications
from mpr_catalog.domain.assets import DELETED
from mpr_catalog.domain.notifications import Action, Notification, parse_notification
from mpr_shared.contracts import AssetRegistered, AssetRemoved, AssetUpdated
from tests.unit.catalog.fakes import FakeDatabase, RecordingQueue
from tests.unit.catalog.samples import BUCKET, minio_body


def put(key: str, seq: str, *, size: int = 10, etag: str = "e1", bucket: str = BUCKET):
    return parse_notification(
        minio_body("s3:ObjectCreated:Put", bucket, key, sequencer=seq, size=size, etag=etag)
    )


def delete(key: str, seq: str) -> Notification:
    return parse_notification(minio_body("s3:ObjectRemoved:Delete", BUCKET, key, sequencer=seq))


async def test_put_registers_once_and_duplicates_change_nothing(
    database: FakeDatabase, queue: RecordingQueue, notifications: BucketNotifications
) -> None:
    await notifications.apply(put("a.mp4", "10"))
    await notifications.apply(put("a.mp4", "10"))  # redelivered
    await notifications.apply(put("a.mp4", "0F"))  # older, late
    assert len(database.assets) == 1
    [registered] = database.messages(AssetRegistered)
    assert registered.key == "a.mp4"
    assert queue.submitted == [registered.asset_id]


async def test_remove_marks_deleted_and_older_put_cannot_bring_it_back(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    await notifications.apply(put("a.mp4", "10"))
    await notifications.apply(delete("a.mp4", "12"))
    await notifications.apply(put("a.mp4", "11"))  # out of order
    asset = database.by_key("a.mp4").state
    assert asset.status == DELETED and asset.deleted_at is not None
    assert len(database.messages(AssetRemoved)) == 1

    await notifications.apply(put("a.mp4", "13", etag="e2"))  # uploaded again
    asset = database.by_key("a.mp4").state
    assert (asset.status, asset.etag) == ("active", "e2")
    assert len(database.messages(AssetRegistered)) == 2


async def test_delete_before_create_leaves_a_tombstone(
    database: FakeDatabase, queue: RecordingQueue, notifications: BucketNotifications
) -> None:
    await notifications.apply(delete("a.mp4", "20"))
    await notifications.apply(put("a.mp4", "1F"))
    assert database.by_key("a.mp4").state.status == DELETED
    assert database.messages(AssetRegistered) == []
    assert queue.submitted == []


async def test_new_content_updates_and_reprobes(
    database: FakeDatabase, queue: RecordingQueue, notifications: BucketNotifications
) -> None:
    await notifications.apply(put("a.mp4", "10"))
    await notifications.apply(put("a.mp4", "11", etag="e2", size=99))
    asset = database.by_key("a.mp4").state
    assert (asset.etag, asset.size, asset.sequencer.lstrip("0")) == ("e2", 99, "11")
    assert len(database.messages(AssetUpdated)) == 1
    assert queue.submitted == [asset.id, asset.id]


async def test_other_buckets_and_unsupported_types_are_ignored(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    results = await notifications.apply(put("a.mp4", "10", bucket="elsewhere"))
    results += await notifications.apply(put("notes.txt", "10"))
    assert [r.decision.reason for r in results] == ["other bucket", "unsupported type"]
    assert database.assets == {}


async def test_keys_breaking_the_key_rules_are_refused_and_the_rest_applied(
    database: FakeDatabase, queue: RecordingQueue, notifications: BucketNotifications
) -> None:
    hostile, good = put("clip\u202e4pm.mp4", "10"), put("fine.mp4", "10")
    removal = delete("cl\u200bip.mp4", "11")
    both = Notification(changes=hostile.changes + good.changes + removal.changes)
    results = await notifications.apply(both)
    assert [r.decision.action for r in results] == [Action.REFUSE, Action.REGISTER, Action.REFUSE]
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in results[0].decision.reason
    assert [a.state.key for a in database.assets.values()] == ["fine.mp4"]
    assert [m.key for m in database.messages(AssetRegistered)] == ["fine.mp4"]
    assert queue.submitted == [database.by_key("fine.mp4").state.id]
