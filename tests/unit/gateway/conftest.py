from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from mpr_gateway.application.jobs import JobService
from mpr_gateway.metrics import GatewayMetrics
from tests.unit.gateway.fakes import FakePresigner, FakeSources, FakeStore, FakeUnitOfWork


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def wakes() -> list[int]:
    return []


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


def job_service(
    store: FakeStore, wakes: list[int], metrics: GatewayMetrics, **ports: Any
) -> JobService:
    """A JobService on fakes; ``ports`` replace its other arguments (e.g. ``executors``)."""
    defaults: dict[str, Any] = {
        "bucket_in": "in",
        "bucket_out": "out",
        "presigner": FakePresigner(),
        "sources": FakeSources({("in", "loose/clip.mov")}),
    }
    return JobService(
        uow=partial(FakeUnitOfWork, store),
        wake_relay=lambda: wakes.append(1),
        telemetry=metrics,
        **{**defaults, **ports},
    )


@pytest.fixture
def service(store: FakeStore, wakes: list[int], metrics: GatewayMetrics) -> JobService:
    return job_service(store, wakes, metrics)
