"""Auto-ingest: MinIO-format bucket notifications through real RabbitMQ into the database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from mpr_catalog.bootstrap import Container
from mpr_catalog.domain.notifications import Action
from mpr_shared.db.models import CatalogOutbox, Job
from tests.integration.catalog.conftest import Assets, Collected, MinioPublisher, wait_for
from tests.unit.catalog.samples import next_sequencer

PUT = "s3:ObjectCreated:Put"
DELETE = "s3:ObjectRemoved:Delete"


def upload(s3_client, bucket: str, key: str, body: bytes | Path) -> dict:
    """Put an object and return what a create notification carries (size, eTag)."""
    data = body.read_bytes() if isinstance(body, Path) else body
    s3_client.put_object(Bucket=bucket, Key=key, Body=data)
    head = s3_client.head_object(Bucket=bucket, Key=key)
    return {"size": head["ContentLength"], "etag": head["ETag"].strip('"')}


async def outbox_keys(sessions, message_type: str) -> list[str]:
    """Keys of the messages of one type the catalog wrote to its outbox (this test's DB)."""
    async with sessions() as session:
        query = select(CatalogOutbox.body).where(CatalogOutbox.message_type == message_type)
        return sorted(json.loads(body)["key"] for body in (await session.scalars(query)).all())


def records_seen(runtime: Container) -> float:
    """Notification records the catalog finished (applied or ignored)."""
    registry = runtime.metrics.registry
    return sum(
        registry.get_sample_value("mpr_catalog_notification_records_total", {"action": a.value})
        or 0
        for a in Action
    )


async def wait_records(runtime: Container, count: int) -> None:
    async def done() -> bool:
        return records_seen(runtime) >= count

    await wait_for(done)


async def test_created_object_is_registered_probed_and_removed_keeping_history(
    catalog: Container,
    minio: MinioPublisher,
    assets: Assets,
    published: Collected,
    s3_client,
    buckets,
    video_file: Path,
    sessions,
) -> None:
    bucket, out = buckets
    key = "clips/intro.mp4"
    meta = upload(s3_client, bucket, key, video_file)
    await minio.event(PUT, bucket, key, **meta)

    asset = await assets.wait(key, probe_status="ok")
    assert (asset.status, asset.media_type) == ("active", "video")
    assert (asset.size_bytes, asset.etag) == (meta["size"], meta["etag"])
    assert asset.sequencer is not None and asset.duration_seconds == pytest.approx(1.0, abs=0.1)
    [registered] = await published.wait("asset.registered")
    assert (registered["asset_id"], registered["key"]) == (str(asset.id), key)
    [probed] = await published.wait("asset.probed")
    assert probed["probe_status"] == "ok"

    async with sessions() as session:  # the gateway's job on this asset
        session.add(
            Job(
                asset_id=asset.id,
                source_bucket=bucket,
                source_key=key,
                kind="transcode",
                spec={"kind": "transcode", "preset": "h264-480p"},
                output_bucket=out,
                output_key="clips/intro/x/h264-480p.mp4",
            )
        )
        await session.commit()

    s3_client.delete_object(Bucket=bucket, Key=key)
    await minio.event(DELETE, bucket, key)
    removed = await assets.wait(key, status="deleted")
    assert removed.id == asset.id and removed.deleted_at is not None
    [event] = await published.wait("asset.removed")
    assert event["asset_id"] == str(asset.id)
    async with sessions() as session:
        jobs = (await session.scalars(select(Job).where(Job.asset_id == asset.id))).all()
    assert len(jobs) == 1  # job history survives the removal


async def test_ignore_rules_and_delete_markers(
    catalog: Container, minio: MinioPublisher, assets: Assets, buckets
) -> None:
    bucket = buckets[0]
    await minio.event(PUT, bucket, "marker.mp4", size=10, etag="m")
    await assets.wait("marker.mp4")
    start = records_seen(catalog)

    await minio.event(PUT, "someone-elses-bucket", "theirs.mp4", size=10, etag="t")
    await minio.event(PUT, bucket, "notes.txt", size=10, etag="n")
    await minio.event(PUT, bucket, "README", size=10, etag="r")
    for name in ("PutTagging", "PutRetention", "PutLegalHold", "DeleteTagging"):
        await minio.event(f"s3:ObjectCreated:{name}", bucket, "tagged.mp4", size=10, etag="x")
    await minio.event("s3:ObjectAccessed:Get", bucket, "marker.mp4", size=10, etag="m")
    await minio.event("s3:ObjectRemoved:DeleteMarkerCreated", bucket, "marker.mp4")
    await wait_records(catalog, start + 9)

    rows = {a.key: a.status for a in await assets.all()}
    assert rows == {"marker.mp4": "deleted"}


async def test_duplicates_and_out_of_order_events_never_register_twice_or_resurrect(
    catalog: Container, minio: MinioPublisher, assets: Assets, sessions, buckets
) -> None:
    bucket = buckets[0]
    first, created, deleted = next_sequencer(), next_sequencer(), next_sequencer()
    start = records_seen(catalog)
    for _ in range(5):  # redelivered / duplicated
        await minio.event(PUT, bucket, "dup.mp4", sequencer=created, size=3, etag="d")
    # The delete is applied before the (older) create of the same key arrives.
    await minio.event(DELETE, bucket, "late.mp4", sequencer=deleted)
    await assets.wait("late.mp4", status="deleted")
    await minio.event(PUT, bucket, "late.mp4", sequencer=created, size=3, etag="l")
    # Registered, deleted, then an older create redelivered.
    await minio.event(PUT, bucket, "gone.mp4", sequencer=first, size=3, etag="g")
    await assets.wait("gone.mp4")
    await minio.event(DELETE, bucket, "gone.mp4", sequencer=deleted)
    await assets.wait("gone.mp4", status="deleted")
    await minio.event(PUT, bucket, "gone.mp4", sequencer=created, size=3, etag="g")
    await wait_records(catalog, start + 10)

    rows = {a.key: (a.status, a.sequencer.lstrip("0")) for a in await assets.all()}
    assert rows == {
        "dup.mp4": ("active", created),
        "late.mp4": ("deleted", deleted),
        "gone.mp4": ("deleted", deleted),
    }
    assert await outbox_keys(sessions, "AssetRegistered") == ["dup.mp4", "gone.mp4"]
    assert await outbox_keys(sessions, "AssetRemoved") == ["gone.mp4"]


async def test_odd_keys_round_trip_and_probe(
    catalog: Container,
    minio: MinioPublisher,
    assets: Assets,
    s3_client,
    buckets,
    video_file: Path,
) -> None:
    bucket = buckets[0]
    keys = [
        "with space.mp4",
        "plus+sign.mp4",
        "100% real.mp4",
        "nested/deeper/dir/clip.mp4",
        "ünïcödé/日本語 🎬.mp4",
        "a&b=c;d,e.mp4",
    ]
    for key in keys:
        await minio.event(PUT, bucket, key, **upload(s3_client, bucket, key, video_file))
    for key in keys:
        asset = await assets.wait(key, probe_status="ok")
        assert asset.probe["streams"][0]["codec"] == "h264", key
    listed = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {a.key for a in await assets.all()} == listed == set(keys)


async def test_new_content_is_updated_and_probed_again(
    catalog: Container,
    minio: MinioPublisher,
    assets: Assets,
    published: Collected,
    s3_client,
    buckets,
    video_file: Path,
    audio_file: Path,
) -> None:
    bucket = buckets[0]
    await minio.event(PUT, bucket, "swap.mp4", **upload(s3_client, bucket, "swap.mp4", video_file))
    before = await assets.wait("swap.mp4", probe_status="ok")
    meta = upload(s3_client, bucket, "swap.mp4", audio_file)  # now audio only
    await minio.event(PUT, bucket, "swap.mp4", **meta)

    async def reprobed():
        asset = await assets.get("swap.mp4")
        return asset if asset.etag == meta["etag"] and asset.probe_status == "ok" else None

    after = await wait_for(reprobed)
    assert after.id == before.id
    assert [s["type"] for s in after.probe["streams"]] == ["audio"]
    [updated] = await published.wait("asset.updated")
    assert updated["etag"] == meta["etag"]


async def test_concurrent_duplicate_deliveries_make_one_asset(
    catalog: Container,
    minio: MinioPublisher,
    assets: Assets,
    published: Collected,
    sessions,
    buckets,
) -> None:
    bucket = buckets[0]
    seq = next_sequencer()
    start = records_seen(catalog)
    await asyncio.gather(
        *(minio.event(PUT, bucket, "race.mp4", sequencer=seq, size=1, etag="r") for _ in range(20))
    )
    await wait_records(catalog, start + 20)
    assert [a.key for a in await assets.all()] == ["race.mp4"]
    assert await outbox_keys(sessions, "AssetRegistered") == ["race.mp4"]
    await published.wait("asset.registered")


async def test_notified_keys_that_hide_what_they_say_are_refused_and_counted(
    catalog: Container, minio: MinioPublisher, assets: Assets, buckets
) -> None:
    bucket = buckets[0]
    start = records_seen(catalog)
    for key in ("clip\u202e4pm.mp4", "cl\u200bip.mp4", "nul\x00byte.mp4"):
        await minio.event(PUT, bucket, key, size=1, etag="h")
    await minio.event(DELETE, bucket, "gone\u202e.mp4")  # not even as a tombstone
    await minio.event(PUT, bucket, "fine.mp4", size=1, etag="f")
    await wait_records(catalog, start + 5)

    assert [a.key for a in await assets.all()] == ["fine.mp4"]
    registry = catalog.metrics.registry
    refused = {"action": Action.REFUSE.value}
    assert registry.get_sample_value("mpr_catalog_notification_records_total", refused) == 4
    by_source = {"source": "notification"}
    assert registry.get_sample_value("mpr_catalog_refused_keys_total", by_source) == 4
