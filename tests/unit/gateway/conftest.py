from __future__ import annotations

import pytest

from mpr_gateway.application.jobs import JobService
from tests.unit.gateway.fakes import FakePresigner, FakeSources, FakeStore, FakeUnitOfWork


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def wakes() -> list[int]:
    return []


@pytest.fixture
def service(store: FakeStore, wakes: list[int]) -> JobService:
    return JobService(
        uow=lambda: FakeUnitOfWork(store),
        bucket_in="in",
        bucket_out="out",
        presigner=FakePresigner(),
        sources=FakeSources({("in", "loose/clip.mov")}),
        wake_relay=lambda: wakes.append(1),
    )
