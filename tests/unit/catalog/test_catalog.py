"""The catalog's use cases against fakes: scan, notifications, probe and the auto-job rule."""

from __future__ import annotations

import uuid

import pytest

from mpr_catalog.domain import DELETED, Notification, parse_notification
from mpr_catalog.probe import ProbeFailed, ProbeUnavailable
from mpr_catalog.services import Catalog
from mpr_shared.contracts import (
    AssetProbed,
    AssetRegistered,
    AssetRemoved,
    AssetUpdated,
    CreateJob,
    JobKind,
)
from tests.unit.catalog.fakes import (
    FakeLister,
    FakeProber,
    FakeStore,
    FakeUnitOfWork,
    RecordingQueue,
    ffprobe_json,
)
from tests.unit.catalog.samples import minio_body

BUCKET = "mpr-media-in"


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


def make_catalog(
    store: FakeStore,
    queue: RecordingQueue,
    lister: FakeLister | None = None,
    prober: FakeProber | None = None,
    **kw,
) -> Catalog:
    return Catalog(
        uow=lambda: FakeUnitOfWork(store),
        lister=lister or FakeLister(),
        prober=prober or FakeProber(),
        bucket=BUCKET,
        probes=queue,
        **kw,
    )


# ---------------------------------------------------------------------------- scan


async def test_scan_registers_new_objects_then_skips_them(store, queue) -> None:
    lister = FakeLister({f"v{i:03}.mp4": (100 + i, f"e{i}") for i in range(25)})
    lister.objects["readme.txt"] = (5, "t")
    catalog = make_catalog(store, queue, lister, batch_size=10)

    first = await catalog.scan()
    assert (first.found, first.registered, first.skipped, first.updated) == (25, 25, 0, 0)
    assert sorted(first.files) == sorted(k for k in lister.objects if k.endswith(".mp4"))
    assert len(store.messages(AssetRegistered)) == 25
    assert store.commits == 3  # one transaction per page of 10
    assert sorted(queue.submitted) == sorted(store.assets)

    second = await catalog.scan()
    assert (second.found, second.registered, second.skipped, second.files) == (25, 0, 25, [])
    assert len(store.messages(AssetRegistered)) == 25


async def test_scan_updates_changed_objects_and_probes_them_again(store, queue) -> None:
    lister = FakeLister({"a.mp4": (10, "e1"), "b.mp4": (20, "e2")})
    catalog = make_catalog(store, queue, lister)
    await catalog.scan()
    lister.objects["a.mp4"] = (11, "e1-new")
    queue.submitted.clear()

    result = await catalog.scan()
    assert (result.registered, result.updated, result.skipped) == (0, 1, 1)
    stored = store.by_key("a.mp4")
    assert (stored.state.size, stored.state.etag, stored.state.probe_status) == (
        11,
        "e1-new",
        "pending",
    )
    [updated] = store.messages(AssetUpdated)
    assert (updated.asset_id, updated.etag) == (stored.state.id, "e1-new")
    assert queue.submitted == [stored.state.id]


async def test_scan_with_prefix_only_lists_that_prefix(store, queue) -> None:
    lister = FakeLister({"in/a.mp4": (1, "a"), "out/b.mp4": (1, "b")})
    result = await make_catalog(store, queue, lister).scan("in/")
    assert result.files == ["in/a.mp4"]


async def test_deleted_asset_that_reappears_is_reactivated_by_a_scan(store, queue) -> None:
    lister = FakeLister({"a.mp4": (10, "e1")})
    catalog = make_catalog(store, queue, lister)
    await catalog.apply_notification(
        parse_notification(minio_body("s3:ObjectRemoved:Delete", BUCKET, "a.mp4"))
    )
    assert store.by_key("a.mp4").state.status == DELETED  # tombstone

    result = await catalog.scan()
    assert (result.registered, result.files) == (1, ["a.mp4"])
    assert store.by_key("a.mp4").state.status == "active"


async def test_full_reconcile_scan_marks_vanished_objects_deleted(store, queue) -> None:
    lister = FakeLister({"keep.mp4": (1, "k"), "gone.mp4": (1, "g")})
    catalog = make_catalog(store, queue, lister)
    await catalog.scan()
    del lister.objects["gone.mp4"]

    await catalog.scan("keep", remove_missing=True)  # a prefix scan never removes
    assert store.by_key("gone.mp4").state.status == "active"
    await catalog.scan(remove_missing=True)
    gone = store.by_key("gone.mp4").state
    assert gone.status == DELETED and gone.deleted_at is not None
    assert [m.key for m in store.messages(AssetRemoved)] == ["gone.mp4"]


# ---------------------------------------------------------------------------- notifications


def put(key: str, seq: str, *, size: int = 10, etag: str = "e1", bucket: str = BUCKET):
    return parse_notification(
        minio_body("s3:ObjectCreated:Put", bucket, key, sequencer=seq, size=size, etag=etag)
    )


def delete(key: str, seq: str):
    return parse_notification(minio_body("s3:ObjectRemoved:Delete", BUCKET, key, sequencer=seq))


async def test_put_registers_once_and_duplicates_change_nothing(store, queue) -> None:
    catalog = make_catalog(store, queue)
    await catalog.apply_notification(put("a.mp4", "10"))
    await catalog.apply_notification(put("a.mp4", "10"))  # redelivered
    await catalog.apply_notification(put("a.mp4", "0F"))  # older, late
    assert len(store.assets) == 1
    [registered] = store.messages(AssetRegistered)
    assert registered.key == "a.mp4"
    assert queue.submitted == [registered.asset_id]


async def test_remove_marks_deleted_and_older_put_cannot_bring_it_back(store, queue) -> None:
    catalog = make_catalog(store, queue)
    await catalog.apply_notification(put("a.mp4", "10"))
    await catalog.apply_notification(delete("a.mp4", "12"))
    await catalog.apply_notification(put("a.mp4", "11"))  # out of order
    asset = store.by_key("a.mp4").state
    assert asset.status == DELETED and asset.deleted_at is not None
    assert len(store.messages(AssetRemoved)) == 1

    await catalog.apply_notification(put("a.mp4", "13", etag="e2"))  # uploaded again
    asset = store.by_key("a.mp4").state
    assert (asset.status, asset.etag) == ("active", "e2")
    assert len(store.messages(AssetRegistered)) == 2


async def test_delete_before_create_leaves_a_tombstone(store, queue) -> None:
    catalog = make_catalog(store, queue)
    await catalog.apply_notification(delete("a.mp4", "20"))
    await catalog.apply_notification(put("a.mp4", "1F"))
    assert store.by_key("a.mp4").state.status == DELETED
    assert store.messages(AssetRegistered) == []
    assert queue.submitted == []


async def test_new_content_updates_and_reprobes(store, queue) -> None:
    catalog = make_catalog(store, queue)
    await catalog.apply_notification(put("a.mp4", "10"))
    await catalog.apply_notification(put("a.mp4", "11", etag="e2", size=99))
    asset = store.by_key("a.mp4").state
    assert (asset.etag, asset.size, asset.sequencer.lstrip("0")) == ("e2", 99, "11")
    assert len(store.messages(AssetUpdated)) == 1
    assert queue.submitted == [asset.id, asset.id]


async def test_other_buckets_and_unsupported_types_are_ignored(store, queue) -> None:
    catalog = make_catalog(store, queue)
    results = await catalog.apply_notification(put("a.mp4", "10", bucket="elsewhere"))
    results += await catalog.apply_notification(put("notes.txt", "10"))
    assert [r.decision.reason for r in results] == ["other bucket", "unsupported type"]
    assert store.assets == {}


async def test_a_failing_record_leaves_nothing_half_registered(store, queue, monkeypatch) -> None:
    catalog = make_catalog(store, queue)
    first = put("a.mp4", "10").changes[0]
    second = put("b.mp4", "10").changes[0]
    notification = Notification(changes=(first, second))
    calls = 0
    original = Catalog._apply_change

    async def flaky(self, uow, change):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database went away")
        return await original(self, uow, change)

    monkeypatch.setattr(Catalog, "_apply_change", flaky)
    with pytest.raises(RuntimeError):
        await catalog.apply_notification(notification)
    assert store.assets == {} and store.outbox == [] and queue.submitted == []


# ---------------------------------------------------------------------------- probe


async def registered(store, queue, key="a.mp4", size=10, **kw) -> tuple[Catalog, uuid.UUID]:
    catalog = make_catalog(store, queue, **kw)
    await catalog.apply_notification(put(key, "10", size=size))
    return catalog, store.by_key(key).state.id


async def test_probe_stores_the_summary_and_emits_asset_probed(store, queue) -> None:
    prober = FakeProber({"a.mp4": ffprobe_json(width=320, height=240, duration=2.0)})
    catalog, asset_id = await registered(store, queue, prober=prober)

    outcome = await catalog.probe(asset_id)
    stored = store.assets[asset_id]
    assert stored.state.probe_status == "ok" == outcome.status
    assert stored.duration == 2.0
    video = stored.probe["streams"][0]
    assert (video["codec"], video["width"], video["height"], video["frame_rate"]) == (
        "h264",
        320,
        240,
        25.0,
    )
    [probed] = store.messages(AssetProbed)
    assert (probed.asset_id, probed.probe_status, probed.duration_seconds) == (asset_id, "ok", 2.0)
    assert await catalog.probe(asset_id) is None  # already probed: nothing to do
    assert prober.calls == ["a.mp4"]


async def test_empty_object_fails_without_running_ffprobe(store, queue) -> None:
    prober = FakeProber()
    catalog, asset_id = await registered(store, queue, size=0, prober=prober)
    outcome = await catalog.probe(asset_id)
    assert outcome.status == "failed" and "empty" in outcome.error
    assert store.assets[asset_id].probe_error == "object is empty (0 bytes)"
    assert prober.calls == []


async def test_undecodable_file_fails_with_the_reason(store, queue) -> None:
    prober = FakeProber({"a.mp4": ProbeFailed("Invalid data found when processing input")})
    catalog, asset_id = await registered(store, queue, prober=prober)
    await catalog.probe(asset_id)
    assert store.assets[asset_id].state.probe_status == "failed"
    assert "Invalid data" in store.assets[asset_id].probe_error
    assert store.messages(AssetProbed)[0].error == store.assets[asset_id].probe_error


async def test_unreachable_storage_leaves_the_probe_pending(store, queue) -> None:
    prober = FakeProber({"a.mp4": ProbeUnavailable("Connection refused")})
    catalog, asset_id = await registered(store, queue, prober=prober)
    with pytest.raises(ProbeUnavailable):
        await catalog.probe(asset_id)
    assert store.assets[asset_id].state.probe_status == "pending"
    assert await catalog.pending_probes() == [asset_id]


async def test_probe_of_content_that_changed_meanwhile_is_dropped(store, queue) -> None:
    class ChangingProber(FakeProber):
        async def probe(self, bucket, key):
            await catalog.apply_notification(put(key, "11", etag="e2"))
            return ffprobe_json()

    catalog, asset_id = await registered(store, queue, prober=ChangingProber())
    assert await catalog.probe(asset_id) is None
    assert store.assets[asset_id].state.probe_status == "pending"
    assert store.messages(AssetProbed) == []


async def test_auto_job_rule_sends_create_job_for_video(store, queue) -> None:
    prober = FakeProber({"a.mp4": ffprobe_json(), "song.mp3": ffprobe_json()})
    catalog, asset_id = await registered(store, queue, prober=prober, auto_preset="h264-720p")
    await catalog.probe(asset_id)
    [job] = store.messages(CreateJob)
    etag = store.assets[asset_id].state.etag
    assert job.idempotency_key == f"auto:{asset_id}:{etag}:h264-720p"
    assert (job.spec.kind, job.spec.preset, job.asset_id) == (
        JobKind.TRANSCODE,
        "h264-720p",
        asset_id,
    )
    assert (job.source_bucket, job.source_key) == (BUCKET, "a.mp4")

    await catalog.apply_notification(put("song.mp3", "10"))
    await catalog.probe(store.by_key("song.mp3").state.id)
    assert len(store.messages(CreateJob)) == 1  # audio assets get no transcode job


async def test_no_auto_job_by_default_or_for_failed_probes(store, queue) -> None:
    prober = FakeProber({"a.mp4": ffprobe_json(), "b.mp4": ProbeFailed("bad")})
    catalog, a = await registered(store, queue, prober=prober)
    await catalog.probe(a)
    catalog.auto_preset = "h264-720p"
    await catalog.apply_notification(put("b.mp4", "10"))
    await catalog.probe(store.by_key("b.mp4").state.id)
    assert store.messages(CreateJob) == []
