"""The scan over RabbitMQ request/reply, concurrent scans, reconcile, and the auto-job rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import func, select

from mpr_catalog.adapters.s3 import S3ObjectLister
from mpr_catalog.bootstrap import Container, bootstrap, running
from mpr_catalog.domain.assets import ObjectInfo
from mpr_catalog.settings import CatalogSettings
from mpr_shared import storage
from mpr_shared.db.models import Asset
from tests.integration.catalog.conftest import Assets, Collected, request_scan, wait_for


async def test_scan_rpc_counts_first_second_and_changed(
    catalog: Container,
    amqp_url: str,
    assets: Assets,
    published: Collected,
    s3_client,
    buckets,
) -> None:
    bucket = buckets[0]
    keys = ["a.mp4", "dir/B.MKV", "dir/sub/c d.mov", "song.flac", "x.M4A"]
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"fake media " + key.encode())
    for ignored in ("readme.txt", "image.png", "dir/"):
        s3_client.put_object(Bucket=bucket, Key=ignored, Body=b"")

    first = await request_scan(amqp_url)
    assert (first.found, first.registered, first.skipped, first.updated) == (5, 5, 0, 0)
    assert sorted(first.files) == sorted(keys)
    assert len(await published.wait("asset.registered", 5)) == 5

    second = await request_scan(amqp_url)
    assert (second.found, second.registered, second.skipped, second.updated) == (5, 0, 5, 0)
    assert second.files == []

    await assets.wait("a.mp4", probe_status="failed")  # fake media: the probe is done
    s3_client.put_object(Bucket=bucket, Key="a.mp4", Body=b"different bytes now")
    s3_client.put_object(Bucket=bucket, Key="new.mp3", Body=b"x")
    third = await request_scan(amqp_url)
    assert (third.found, third.registered, third.skipped, third.updated) == (6, 1, 4, 1)
    assert third.files == ["new.mp3"]
    changed = await assets.get("a.mp4")
    assert changed.size_bytes == len(b"different bytes now")
    [updated] = await published.wait("asset.updated")
    assert updated["key"] == "a.mp4"

    only_dir = await request_scan(amqp_url, prefix="dir/")
    assert (only_dir.found, only_dir.skipped) == (2, 2)


async def test_concurrent_scans_never_duplicate(
    catalog: Container, settings: CatalogSettings, sessions, s3_client, buckets
) -> None:
    bucket = buckets[0]
    for n in range(150):
        s3_client.put_object(Bucket=bucket, Key=f"many/{n:04}.mp4", Body=b"v")
    # Three replicas scanning the same bucket at once (one replica joins its own scans).
    replicas = [catalog, bootstrap(settings), bootstrap(settings)]
    try:
        results = await asyncio.gather(*(r.scanner.scan() for r in replicas))
    finally:
        for replica in replicas[1:]:
            await replica.engine.dispose()
    assert sum(r.registered for r in results) == 150
    assert all(r.found == 150 for r in results)
    assert sorted(f for r in results for f in r.files) == [f"many/{n:04}.mp4" for n in range(150)]
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Asset).where(Asset.bucket == bucket)
        )
    assert count == 150


async def test_reconcile_marks_vanished_and_reactivates_returning_objects(
    catalog_env: dict, assets: Assets, published: Collected, s3_client, buckets
) -> None:
    bucket = buckets[0]
    for key in ("stay.mp4", "vanish.mp4"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"v")
    settings = CatalogSettings(**catalog_env, SCAN_INTERVAL_SECONDS="0.5")
    async with running(bootstrap(settings)):  # the reconcile loop runs on its own
        await assets.wait("vanish.mp4")
        s3_client.delete_object(Bucket=bucket, Key="vanish.mp4")
        gone = await assets.wait("vanish.mp4", status="deleted")
        assert gone.deleted_at is not None
        [removed] = await published.wait("asset.removed")
        assert removed["key"] == "vanish.mp4"
        assert (await assets.get("stay.mp4")).status == "active"

        s3_client.put_object(Bucket=bucket, Key="vanish.mp4", Body=b"back again")
        back = await assets.wait("vanish.mp4", status="active")
        assert back.id == gone.id and back.deleted_at is None
        assert back.size_bytes == len(b"back again")


async def test_auto_job_rule_sends_create_job_for_new_video(
    catalog_env: dict, published: Collected, s3_client, buckets, video_file: Path, audio_file
) -> None:
    bucket = buckets[0]
    s3_client.upload_file(str(video_file), bucket, "auto/clip.mp4")
    s3_client.upload_file(str(audio_file), bucket, "auto/tone.mp3")
    settings = CatalogSettings(**catalog_env, AUTO_TRANSCODE_PRESET="h264-480p")
    async with running(bootstrap(settings)) as runtime:
        await runtime.scanner.scan()
        [job] = await published.wait("job.create")
        await published.wait("asset.probed", 2)
    asset_id, etag = job["asset_id"], job["idempotency_key"].split(":")[2]
    assert job["idempotency_key"] == f"auto:{asset_id}:{etag}:h264-480p"
    assert (job["source_bucket"], job["source_key"]) == (bucket, "auto/clip.mp4")
    assert job["spec"] == {
        "kind": "transcode",
        "preset": "h264-480p",
        "start": None,
        "end": None,
        "mode": None,
        "at": None,
        "count": None,
    }
    assert job["requested_by"] == "catalog:auto-transcode"
    assert len(published.of("job.create")) == 1  # the audio asset asked for no job


async def test_scan_of_a_missing_bucket_replies_with_the_reason(
    catalog: Container, amqp_url: str, s3_client, buckets
) -> None:
    for name in buckets:
        s3_client.delete_bucket(Bucket=name)
    try:
        result = await request_scan(amqp_url)
        assert result.error and "NoSuchBucket" in result.error
        assert (result.found, result.registered, result.files) == (0, 0, [])
    finally:
        for name in buckets:
            s3_client.create_bucket(Bucket=name)


# ---------------------------------------------------------------- coalescing and the bound


class GatedLister:
    """The real S3 lister, held before its first page until the test opens the gate."""

    def __init__(self, settings: CatalogSettings) -> None:
        self._lister = S3ObjectLister(storage.get_s3_client(settings))
        self.gate = asyncio.Event()
        self.listings: list[str] = []

    async def pages(
        self, bucket: str, prefix: str, page_size: int
    ) -> AsyncIterator[list[ObjectInfo]]:
        self.listings.append(prefix)
        await self.gate.wait()
        async for page in self._lister.pages(bucket, prefix, page_size):
            yield page

    async def started(self) -> bool:
        return bool(self.listings)


async def scan_queue_ready(amqp) -> int:
    """Scan requests waiting in mpr.catalog.scan (not yet delivered to the catalog)."""
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue("mpr.catalog.scan", durable=True, passive=True)
        return queue.declaration_result.message_count
    finally:
        await channel.close()


async def delivered(amqp) -> None:
    """Every scan request sent so far has reached the catalog's handlers."""

    async def none_waiting() -> bool:
        return await scan_queue_ready(amqp) == 0

    await wait_for(none_waiting)
    await asyncio.sleep(0.5)  # from delivery into the handler: far less than this


async def test_a_scan_asked_for_while_the_same_runs_gets_its_result(
    catalog_env: dict, amqp, amqp_url: str, s3_client, buckets
) -> None:
    bucket = buckets[0]
    for n in range(30):
        s3_client.put_object(Bucket=bucket, Key=f"same/{n:03}.mp4", Body=b"v")
    settings = CatalogSettings(**catalog_env)
    lister = GatedLister(settings)
    async with running(bootstrap(settings, lister=lister)):
        first = asyncio.create_task(request_scan(amqp_url, "same/"))
        await wait_for(lister.started)
        second = asyncio.create_task(request_scan(amqp_url, "same/"))
        await delivered(amqp)
        lister.gate.set()
        one, two = await asyncio.gather(first, second)
    assert lister.listings == ["same/"]  # listed once for both requests
    assert one == two and one.registered == 30 and len(one.files) == 30


async def test_no_more_scans_run_at_once_than_the_bound(
    catalog_env: dict, amqp, amqp_url: str, s3_client, buckets
) -> None:
    bucket = buckets[0]
    for prefix in ("a/", "b/"):
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}clip.mp4", Body=b"v")
    settings = CatalogSettings(**catalog_env, SCAN_CONCURRENCY="1")
    lister = GatedLister(settings)
    async with running(bootstrap(settings, lister=lister)):
        scans = [asyncio.create_task(request_scan(amqp_url, p)) for p in ("a/", "b/")]
        await delivered(amqp)
        assert len(lister.listings) == 1  # the other request waits for the slot
        lister.gate.set()
        results = await asyncio.gather(*scans)
    assert sorted(lister.listings) == ["a/", "b/"]
    assert [r.files for r in results] == [["a/clip.mp4"], ["b/clip.mp4"]]


# ---------------------------------------------------------------- keys that hide what they say


HOSTILE_KEYS = ("clip\u202e4pm.mp4", "cl\u200bip.mp4", "tab\there.mp4")


async def test_a_scan_refuses_hostile_keys_counts_them_and_registers_the_rest(
    catalog: Container, amqp_url: str, assets: Assets, s3_client, buckets
) -> None:
    bucket = buckets[0]
    for key in (*HOSTILE_KEYS, "fine.mp4"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"v")
    result = await request_scan(amqp_url)
    assert (result.found, result.registered, result.files) == (1, 1, ["fine.mp4"])
    assert [a.key for a in await assets.all()] == ["fine.mp4"]
    refused = catalog.metrics.registry.get_sample_value(
        "mpr_catalog_refused_keys_total", {"source": "scan"}
    )
    assert refused == len(HOSTILE_KEYS)
