"""The fake unit of work keeps the contract the SQL one keeps (tests/integration/catalog)."""

from __future__ import annotations

import pytest

from tests.unit.catalog.fakes import FakeDatabase, FakeUnitOfWorkFactory
from tests.unit.catalog.samples import BUCKET
from tests.unit.catalog.uow_contract import CONTRACT, CommittedMessages, asset


def committed_messages(database: FakeDatabase) -> CommittedMessages:
    async def committed() -> list[str]:
        return [type(m).__name__ for m in database.outbox]

    return committed


@pytest.mark.parametrize("rule", CONTRACT, ids=lambda rule: rule.__name__)
async def test_fake_unit_of_work_keeps_the_contract(rule) -> None:
    database = FakeDatabase()
    await rule(FakeUnitOfWorkFactory(database), BUCKET, committed_messages(database))


async def test_filters_are_honoured(database: FakeDatabase) -> None:
    uow = FakeUnitOfWorkFactory(database)
    mine, theirs = asset(BUCKET, "a.mp4"), asset("elsewhere", "a.mp4")
    async with uow() as writer:
        await writer.assets.insert([mine, theirs])
        await writer.commit()
    assert set(database.assets) == {mine.id, theirs.id}  # the same key in two buckets
    async with uow() as reader:
        assert [s.bucket for s in (await reader.assets.find(BUCKET, ["a.mp4"])).values()] == [
            BUCKET
        ]
        assert await reader.assets.pending_probes("elsewhere") == [theirs.id]
        assert await reader.assets.find(BUCKET, ["b.mp4"]) == {}
