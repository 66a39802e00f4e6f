"""The catalog's use cases wired to the fakes of their ports."""

from __future__ import annotations

import pytest

from mpr_catalog.application.notifications import BucketNotifications
from mpr_catalog.application.registration import Registrar
from mpr_catalog.application.scanning import Scanner
from tests.unit.catalog.fakes import (
    FakeDatabase,
    FakeLister,
    FakeUnitOfWorkFactory,
    RecordingQueue,
)
from tests.unit.catalog.samples import BUCKET


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def uow(database: FakeDatabase) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(database)


@pytest.fixture
def registrar(uow: FakeUnitOfWorkFactory, queue: RecordingQueue) -> Registrar:
    return Registrar(uow, queue, BUCKET)


@pytest.fixture
def notifications(uow: FakeUnitOfWorkFactory, queue: RecordingQueue) -> BucketNotifications:
    return BucketNotifications(uow, queue, BUCKET)


def make_scanner(
    lister: FakeLister,
    registrar: Registrar,
    uow: FakeUnitOfWorkFactory,
    *,
    batch_size: int = 1000,
    concurrency: int = 2,
) -> Scanner:
    return Scanner(lister, registrar, uow, batch_size=batch_size, concurrency=concurrency)
