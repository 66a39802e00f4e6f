"""What every catalog unit of work must do, run against the fake (unit) and SQL (integration).

A use case relies on these: writes nobody else sees before commit, nothing left behind by a
failure half-way (assets and outbox alike), changes and messages committed together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from mpr_catalog.application.notifications import BucketNotifications
from mpr_catalog.application.ports import UnitOfWork, UnitOfWorkFactory
from mpr_catalog.domain.assets import NewAsset, ObjectInfo, new_asset
from mpr_catalog.domain.notifications import Notification, parse_notification
from mpr_shared.contracts import AssetRegistered
from tests.unit.catalog.fakes import RecordingQueue
from tests.unit.catalog.samples import minio_body

CommittedMessages = Callable[[], Awaitable[list[str]]]
"""The message types the database's outbox holds, committed."""


def asset(bucket: str, key: str) -> NewAsset:
    return new_asset(bucket, ObjectInfo(key, 1, "e"))


def registered(a: NewAsset) -> AssetRegistered:
    return AssetRegistered(
        asset_id=a.id, bucket=a.bucket, key=a.key, size_bytes=1, etag="e", media_type="video"
    )


async def writes_stay_invisible_until_commit(
    uow: UnitOfWorkFactory, bucket: str, committed: CommittedMessages
) -> None:
    a = asset(bucket, "a.mp4")
    async with uow() as writer:
        assert await writer.assets.insert([a]) == {"a.mp4"}
        writer.outbox.add(registered(a))
        assert set(await writer.assets.find(bucket, ["a.mp4"])) == {"a.mp4"}  # its own write
        async with uow() as other:
            assert await other.assets.find(bucket, ["a.mp4"]) == {}
            assert await other.assets.get(a.id) is None
        assert await committed() == []
        await writer.commit()
        b = asset(bucket, "b.mp4")  # a second transaction on the same unit of work
        assert await writer.assets.insert([b]) == {"b.mp4"}
        writer.outbox.add(registered(b))
    async with uow() as reader:  # the first committed, the second rolled back
        assert set(await reader.assets.find(bucket, ["a.mp4", "b.mp4"])) == {"a.mp4"}
    assert await committed() == ["AssetRegistered"]


async def leaving_without_commit_keeps_nothing(
    uow: UnitOfWorkFactory, bucket: str, committed: CommittedMessages
) -> None:
    a = asset(bucket, "a.mp4")
    with pytest.raises(RuntimeError):
        async with uow() as writer:
            await writer.assets.insert([a])
            writer.outbox.add(registered(a))
            raise RuntimeError("the handler failed")
    async with uow() as reader:
        assert await reader.assets.find(bucket, ["a.mp4"]) == {}
    assert await committed() == []


def _failing_on_second_insert(uow: UnitOfWorkFactory) -> UnitOfWorkFactory:
    """``uow`` whose units of work fail on their second insert (a database gone mid-message)."""

    class Failing:
        def __init__(self) -> None:
            self.inner = uow()
            self.inserts = 0

        async def __aenter__(self) -> UnitOfWork:
            entered = await self.inner.__aenter__()
            real_insert = entered.assets.insert

            async def insert(assets: list[NewAsset]) -> set[str]:
                self.inserts += 1
                if self.inserts == 2:
                    raise ConnectionError("database went away")
                return await real_insert(assets)

            entered.assets.insert = insert  # type: ignore[method-assign]  # the injected fault
            return entered

        async def __aexit__(self, *exc_info: object) -> None:
            await self.inner.__aexit__(*exc_info)

    return Failing  # type: ignore[return-value]  # a factory of units of work that fail


async def a_failing_record_leaves_nothing_half_registered(
    uow: UnitOfWorkFactory, bucket: str, committed: CommittedMessages
) -> None:
    def put(key: str) -> Notification:
        body = minio_body("s3:ObjectCreated:Put", bucket, key, sequencer="10", size=1, etag="e")
        return parse_notification(body)

    both = Notification(changes=put("a.mp4").changes + put("b.mp4").changes)
    queue = RecordingQueue()
    with pytest.raises(ConnectionError):
        await BucketNotifications(_failing_on_second_insert(uow), queue, bucket).apply(both)
    async with uow() as reader:
        assert await reader.assets.find(bucket, ["a.mp4", "b.mp4"]) == {}
    assert await committed() == [] and queue.submitted == []

    await BucketNotifications(uow, queue, bucket).apply(both)  # redelivered: applied whole
    async with uow() as reader:
        assert set(await reader.assets.find(bucket, ["a.mp4", "b.mp4"])) == {"a.mp4", "b.mp4"}
    assert await committed() == ["AssetRegistered", "AssetRegistered"]


CONTRACT = (
    writes_stay_invisible_until_commit,
    leaving_without_commit_keeps_nothing,
    a_failing_record_leaves_nothing_half_registered,
)
