"""The fakes behave like what they stand in for: the unit of work keeps the contract the SQL one
keeps (tests/integration/catalog), and filters are honoured."""

from __future__ import annotations

import pytest

from mpr_catalog.domain.probe import UnreadableMedia
from tests.unit.catalog.fakes import FakeDatabase, FakeLister, FakeProber, FakeUnitOfWorkFactory
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


async def test_lister_and_prober_answer_for_their_bucket_only() -> None:
    lister, prober = FakeLister({"a.mp4": (1, "e")}), FakeProber({"a.mp4": {"streams": []}})
    assert [p async for p in lister.pages("elsewhere", "", 10)] == []
    assert [[o.key for o in p] async for p in lister.pages(BUCKET, "", 10)] == [["a.mp4"]]
    assert await prober.probe(BUCKET, "a.mp4") == {"streams": []}
    with pytest.raises(UnreadableMedia, match="not found"):
        await prober.probe("elsewhere", "a.mp4")
