"""Probing an asset against fakes: the stored summary, failures, and the auto-job rule."""

from __future__ import annotations

import uuid

import pytest

from mpr_catalog.application.notifications import BucketNotifications
from mpr_catalog.application.ports import MediaUnreachable
from mpr_catalog.application.probing import AssetProber
from mpr_catalog.domain.probe import UnreadableMedia
from mpr_shared.contracts import AssetProbed, CreateJob, JobKind
from mpr_shared.presets import get_preset
from tests.unit.catalog.fakes import FakeDatabase, FakeProber, FakeUnitOfWorkFactory, ffprobe_json
from tests.unit.catalog.samples import BUCKET
from tests.unit.catalog.test_bucket_notifications import put


async def registered(
    database: FakeDatabase,
    notifications: BucketNotifications,
    prober: FakeProber,
    key: str = "a.mp4",
    size: int = 10,
    auto_preset: str | None = None,
) -> tuple[AssetProber, uuid.UUID]:
    """An asset registered by a notification, and a prober for it."""
    await notifications.apply(put(key, "10", size=size))
    preset = get_preset(auto_preset) if auto_preset else None
    asset_prober = AssetProber(FakeUnitOfWorkFactory(database), prober, BUCKET, auto_preset=preset)
    return asset_prober, database.by_key(key).state.id


async def test_probe_stores_the_summary_and_emits_asset_probed(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    prober = FakeProber({"a.mp4": ffprobe_json(width=320, height=240, duration=2.0)})
    asset_prober, asset_id = await registered(database, notifications, prober)

    outcome = await asset_prober.probe(asset_id)
    stored = database.assets[asset_id]
    assert stored.state.probe_status == "ok" == outcome.status
    assert stored.duration == 2.0
    video = stored.probe["streams"][0]
    assert (video["codec"], video["width"], video["height"], video["frame_rate"]) == (
        "h264",
        320,
        240,
        25.0,
    )
    [probed] = database.messages(AssetProbed)
    assert (probed.asset_id, probed.probe_status, probed.duration_seconds) == (asset_id, "ok", 2.0)
    assert await asset_prober.probe(asset_id) is None  # already probed: nothing to do
    assert prober.calls == ["a.mp4"]


async def test_empty_object_fails_without_running_ffprobe(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    prober = FakeProber()
    asset_prober, asset_id = await registered(database, notifications, prober, size=0)
    outcome = await asset_prober.probe(asset_id)
    assert outcome.status == "failed" and "empty" in outcome.error
    assert database.assets[asset_id].probe_error == "object is empty (0 bytes)"
    assert prober.calls == []


async def test_undecodable_file_fails_with_the_reason(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    prober = FakeProber({"a.mp4": UnreadableMedia("Invalid data found when processing input")})
    asset_prober, asset_id = await registered(database, notifications, prober)
    await asset_prober.probe(asset_id)
    assert database.assets[asset_id].state.probe_status == "failed"
    assert "Invalid data" in database.assets[asset_id].probe_error
    assert database.messages(AssetProbed)[0].error == database.assets[asset_id].probe_error


async def test_unreachable_storage_leaves_the_probe_pending(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    prober = FakeProber({"a.mp4": MediaUnreachable("Connection refused")})
    asset_prober, asset_id = await registered(database, notifications, prober)
    with pytest.raises(MediaUnreachable):
        await asset_prober.probe(asset_id)
    assert database.assets[asset_id].state.probe_status == "pending"
    assert await asset_prober.pending() == [asset_id]


async def test_probe_of_content_that_changed_meanwhile_is_dropped(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    class ChangingProber(FakeProber):
        async def probe(self, bucket: str, key: str) -> dict:
            await notifications.apply(put(key, "11", etag="e2"))
            return ffprobe_json()

    asset_prober, asset_id = await registered(database, notifications, ChangingProber())
    assert await asset_prober.probe(asset_id) is None
    assert database.assets[asset_id].state.probe_status == "pending"
    assert database.messages(AssetProbed) == []


async def test_auto_job_rule_sends_create_job_for_video(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    prober = FakeProber({"a.mp4": ffprobe_json(), "song.mp3": ffprobe_json()})
    asset_prober, asset_id = await registered(
        database, notifications, prober, auto_preset="h264-720p"
    )
    await asset_prober.probe(asset_id)
    [job] = database.messages(CreateJob)
    etag = database.assets[asset_id].state.etag
    assert job.idempotency_key == f"auto:{asset_id}:{etag}:h264-720p"
    assert (job.spec.kind, job.spec.preset, job.asset_id) == (
        JobKind.TRANSCODE,
        "h264-720p",
        asset_id,
    )
    assert (job.source_bucket, job.source_key) == (BUCKET, "a.mp4")

    await notifications.apply(put("song.mp3", "10"))
    await asset_prober.probe(database.by_key("song.mp3").state.id)
    assert len(database.messages(CreateJob)) == 1  # audio assets get no transcode job


async def test_no_auto_job_by_default_or_for_failed_probes(
    database: FakeDatabase, notifications: BucketNotifications
) -> None:
    prober = FakeProber({"a.mp4": ffprobe_json(), "b.mp4": UnreadableMedia("bad")})
    asset_prober, a = await registered(database, notifications, prober)
    await asset_prober.probe(a)
    auto, b = await registered(database, notifications, prober, "b.mp4", auto_preset="h264-720p")
    await auto.probe(b)
    assert database.messages(CreateJob) == []
