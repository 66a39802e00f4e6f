"""Scans against fakes: registration per page, coalescing, the bound, refused keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mpr_catalog.application.notifications import BucketNotifications
from mpr_catalog.application.registration import Registrar
from mpr_catalog.domain.assets import DELETED, ObjectInfo
from mpr_catalog.domain.notifications import parse_notification
from mpr_shared.contracts import AssetRegistered, AssetRemoved, AssetUpdated
from tests.unit.catalog.conftest import make_scanner
from tests.unit.catalog.fakes import (
    FakeDatabase,
    FakeLister,
    FakeUnitOfWorkFactory,
    RecordingQueue,
)
from tests.unit.catalog.samples import BUCKET, minio_body


async def test_scan_registers_new_objects_then_skips_them(
    database: FakeDatabase, queue: RecordingQueue, registrar: Registrar, uow
) -> None:
    lister = FakeLister({f"v{i:03}.mp4": (100 + i, f"e{i}") for i in range(25)})
    lister.objects["readme.txt"] = (5, "t")
    scanner = make_scanner(lister, registrar, uow, batch_size=10)

    first = await scanner.scan()
    assert (first.found, first.registered, first.skipped, first.updated) == (25, 25, 0, 0)
    assert sorted(first.files) == sorted(k for k in lister.objects if k.endswith(".mp4"))
    assert len(database.messages(AssetRegistered)) == 25
    assert database.commits == 3  # one transaction per page of 10
    assert sorted(queue.submitted) == sorted(database.assets)

    second = await scanner.scan()
    assert (second.found, second.registered, second.skipped, second.files) == (25, 0, 25, [])
    assert len(database.messages(AssetRegistered)) == 25


async def test_scan_updates_changed_objects_and_probes_them_again(
    database: FakeDatabase, queue: RecordingQueue, registrar: Registrar, uow
) -> None:
    lister = FakeLister({"a.mp4": (10, "e1"), "b.mp4": (20, "e2")})
    scanner = make_scanner(lister, registrar, uow)
    await scanner.scan()
    lister.objects["a.mp4"] = (11, "e1-new")
    queue.submitted.clear()

    result = await scanner.scan()
    assert (result.registered, result.updated, result.skipped) == (0, 1, 1)
    stored = database.by_key("a.mp4")
    assert (stored.state.size, stored.state.etag, stored.state.probe_status) == (
        11,
        "e1-new",
        "pending",
    )
    [updated] = database.messages(AssetUpdated)
    assert (updated.asset_id, updated.etag) == (stored.state.id, "e1-new")
    assert queue.submitted == [stored.state.id]


async def test_scan_with_prefix_only_lists_that_prefix(registrar: Registrar, uow) -> None:
    lister = FakeLister({"in/a.mp4": (1, "a"), "out/b.mp4": (1, "b")})
    result = await make_scanner(lister, registrar, uow).scan("in/")
    assert result.files == ["in/a.mp4"]


async def test_deleted_asset_that_reappears_is_reactivated_by_a_scan(
    database: FakeDatabase,
    registrar: Registrar,
    notifications: BucketNotifications,
    uow,
) -> None:
    lister = FakeLister({"a.mp4": (10, "e1")})
    await notifications.apply(
        parse_notification(minio_body("s3:ObjectRemoved:Delete", BUCKET, "a.mp4"))
    )
    assert database.by_key("a.mp4").state.status == DELETED  # tombstone

    result = await make_scanner(lister, registrar, uow).scan()
    assert (result.registered, result.files) == (1, ["a.mp4"])
    assert database.by_key("a.mp4").state.status == "active"


async def test_full_reconcile_scan_marks_vanished_objects_deleted(
    database: FakeDatabase, registrar: Registrar, uow
) -> None:
    lister = FakeLister({"keep.mp4": (1, "k"), "gone.mp4": (1, "g")})
    scanner = make_scanner(lister, registrar, uow)
    await scanner.scan()
    del lister.objects["gone.mp4"]

    await scanner.scan("keep", remove_missing=True)  # a prefix scan never removes
    assert database.by_key("gone.mp4").state.status == "active"
    report = await scanner.scan(remove_missing=True)
    gone = database.by_key("gone.mp4").state
    assert gone.status == DELETED and gone.deleted_at is not None
    assert report.removed == 1
    assert [m.key for m in database.messages(AssetRemoved)] == ["gone.mp4"]


async def test_keys_breaking_the_key_rules_are_refused_and_the_page_goes_on(
    database: FakeDatabase, registrar: Registrar, uow
) -> None:
    hostile = {"clip\u202e4pm.mp4": (1, "r"), "cl\u200bip.mp4": (1, "z"), "b\x07ell.mp4": (1, "c")}
    lister = FakeLister({"good.mp4": (1, "g"), "other.mov": (2, "o"), **hostile})
    report = await make_scanner(lister, registrar, uow).scan()
    assert (report.found, report.registered, sorted(report.files)) == (
        2,
        2,
        ["good.mp4", "other.mov"],
    )
    assert {r.key for r in report.refused} == set(hostile)
    reasons = {r.key: r.reason for r in report.refused}
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in reasons["clip\u202e4pm.mp4"]
    assert "U+200B ZERO WIDTH SPACE" in reasons["cl\u200bip.mp4"]
    assert {a.state.key for a in database.assets.values()} == {"good.mp4", "other.mov"}


async def test_one_object_registers_on_its_own(
    database: FakeDatabase, queue: RecordingQueue, registrar: Registrar
) -> None:
    """What an upload will ask for: one key, registered and queued for its probe at once."""
    first = await registrar.register_object(ObjectInfo("up/new.mp4", 5, "e1"), {})
    again = await registrar.register_object(ObjectInfo("up/new.mp4", 5, "e1"), {})
    changed = await registrar.register_object(ObjectInfo("up/new.mp4", 6, "e2"), {})
    [asset] = first.new
    assert (again.new, again.unchanged) == ([], 1)
    assert [a.id for a in changed.updated] == [asset.id]
    assert queue.submitted == [asset.id, asset.id]
    assert [type(m) for m in database.outbox] == [AssetRegistered, AssetUpdated]
    refused = await registrar.register_object(ObjectInfo("x\u202e.mp4", 1, "e"), {})
    assert (refused.found, [r.key for r in refused.refused]) == (0, ["x\u202e.mp4"])


# ---------------------------------------------------------------- coalescing and the bound


class GatedLister(FakeLister):
    """A listing that blocks on its first page until the test opens the gate."""

    def __init__(self, objects: dict[str, tuple[int, str]]) -> None:
        super().__init__(objects)
        self.gate = asyncio.Event()
        self.listings: list[str] = []
        self.listing = asyncio.Event()

    async def pages(self, bucket: str, prefix: str, page_size: int) -> AsyncIterator[list]:
        self.listings.append(prefix)
        self.listing.set()
        await self.gate.wait()
        async for page in super().pages(bucket, prefix, page_size):
            yield page


async def test_the_same_scan_asked_for_while_it_runs_is_joined_not_repeated(
    registrar: Registrar, uow: FakeUnitOfWorkFactory
) -> None:
    lister = GatedLister({"a/1.mp4": (1, "a"), "b/2.mp4": (1, "b")})
    scanner = make_scanner(lister, registrar, uow)
    first = asyncio.create_task(scanner.scan("a/"))
    await lister.listing.wait()
    second = asyncio.create_task(scanner.scan("a/"))
    other = asyncio.create_task(scanner.scan("b/"))
    await asyncio.sleep(0.01)
    lister.gate.set()
    reports = await asyncio.gather(first, second, other)
    assert sorted(lister.listings) == ["a/", "b/"]  # "a/" listed once
    assert reports[0] is reports[1] and reports[0].files == ["a/1.mp4"]
    assert reports[2].files == ["b/2.mp4"]

    again = await scanner.scan("a/")  # after it finished: a new scan
    assert lister.listings.count("a/") == 2 and (again.registered, again.skipped) == (0, 1)


async def test_at_most_the_bound_of_scans_run_at_once(
    registrar: Registrar, uow: FakeUnitOfWorkFactory
) -> None:
    lister = GatedLister({f"{p}/x.mp4": (1, p) for p in "abc"})
    scanner = make_scanner(lister, registrar, uow, concurrency=2)
    scans = [asyncio.create_task(scanner.scan(f"{p}/")) for p in "abc"]
    await asyncio.sleep(0.05)
    assert sorted(lister.listings) == ["a/", "b/"]  # the third waits for a slot
    lister.gate.set()
    reports = await asyncio.gather(*scans)
    assert sorted(lister.listings) == ["a/", "b/", "c/"]
    assert [r.registered for r in reports] == [1, 1, 1]


async def test_a_failing_scan_fails_every_caller_that_joined_it(
    registrar: Registrar, uow: FakeUnitOfWorkFactory
) -> None:
    class Broken(GatedLister):
        async def pages(self, bucket: str, prefix: str, page_size: int) -> AsyncIterator[list]:
            async for page in super().pages(bucket, prefix, page_size):
                yield page
            raise ConnectionError("S3 went away")

    lister = Broken({"a.mp4": (1, "a")})
    scanner = make_scanner(lister, registrar, uow)
    scans = [asyncio.create_task(scanner.scan()) for _ in range(2)]
    await lister.listing.wait()
    lister.gate.set()
    results = await asyncio.gather(*scans, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert lister.listings == [""]


async def test_stop_cancels_running_scans(registrar: Registrar, uow) -> None:
    lister = GatedLister({"a.mp4": (1, "a")})
    scanner = make_scanner(lister, registrar, uow)
    waiting = asyncio.create_task(scanner.scan())
    await lister.listing.wait()
    await scanner.stop()
    with pytest.raises(asyncio.CancelledError):
        await waiting
