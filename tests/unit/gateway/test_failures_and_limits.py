"""Failure reason codes, the per-client scan limit, and the job metrics the dashboard reads."""

from __future__ import annotations

from functools import partial
from uuid import uuid4

import pytest

from mpr_gateway.application.assets import AssetService
from mpr_gateway.application.job_request import JobRequest
from mpr_gateway.application.rate_limit import RateLimit
from mpr_gateway.domain.errors import InvalidRequest, RateLimited
from mpr_gateway.domain.failures import FailureReason, failure_reason
from mpr_gateway.metrics import GatewayMetrics
from mpr_shared.contracts import JobCompleted, JobFailed, JobStarted, ProbeStatus, ScanResult
from tests.unit.gateway.fakes import FakeScanner, FakeStore, FakeUnitOfWork, asset

JOB = uuid4()


@pytest.mark.parametrize(
    ("reason", "retryable", "code"),
    [
        # What the transcoder and the Lambda executor write (mpr_transcoder core and worker).
        (
            "FFmpeg failed (exit code 1): Invalid data found when processing input",
            False,
            "bad_input",
        ),
        ("the source has no video stream", False, "bad_input"),
        ("job exceeded MAX_JOB_SECONDS (3600s)", False, "timeout"),
        ("job timed out", False, "timeout"),
        ("gave up after 5 deliveries: S3 read timed out", True, "gave_up"),
        ("internal error: KeyError: 'x'", False, "internal"),
        ("the Lambda executor failed: States.Timeout: ...", True, "internal"),
    ],
)
def test_failure_reasons_are_a_bounded_set(reason: str, retryable: bool, code: str) -> None:
    event = JobFailed(job_id=JOB, reason=reason, retryable=retryable)
    assert failure_reason(event) == FailureReason(code)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_allows_a_burst_then_says_when_to_retry() -> None:
    clock = Clock()
    limit = RateLimit(per_minute=3, what="scan", clock=clock)
    for _ in range(3):
        limit.take("alice")
    with pytest.raises(RateLimited, match="at most 3 a minute") as refused:
        limit.take("alice")
    assert refused.value.retry_after == 20  # one token every 60/3 s
    limit.take("bob")  # each client has its own allowance
    clock.now += 20
    limit.take("alice")  # refilled
    with pytest.raises(RateLimited):
        limit.take("alice")


async def test_scans_are_limited_per_client_and_bad_prefixes_cost_nothing(store: FakeStore):
    scanner = FakeScanner(ScanResult(found=0, registered=0, skipped=0, files=[]))
    assets = AssetService(
        uow=partial(FakeUnitOfWork, store),
        scanner=scanner,
        scan_limit=RateLimit(per_minute=2, what="scan", clock=Clock()),
    )
    with pytest.raises(InvalidRequest):
        await assets.scan("/absolute", "alice")
    await assets.scan("a/", "alice")
    await assets.scan("b/", "alice")
    with pytest.raises(RateLimited):
        await assets.scan("c/", "alice")
    assert scanner.prefixes == ["a/", "b/"]


async def test_finished_jobs_are_counted_timed_and_failures_coded(
    service, store: FakeStore, metrics: GatewayMetrics
):
    video = asset("v/a.mp4")
    store.assets[video.id] = video
    ok = (await service.create(JobRequest(source_key="v/a.mp4", kind="audio"))).job
    bad = (await service.create(JobRequest(source_key="v/a.mp4", kind="audio"))).job
    gone = (await service.create(JobRequest(source_key="v/a.mp4", kind="audio"))).job
    await service.apply_event(JobStarted(job_id=ok.id, worker="w"))
    await service.apply_event(JobCompleted(job_id=ok.id, outputs=[]))
    failed = JobFailed(job_id=bad.id, reason="job exceeded MAX_JOB_SECONDS (60s)")
    await service.apply_event(failed)
    await service.apply_event(failed)  # a replay is not a second failure
    await service.cancel(gone.id)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    audio = {"kind": "audio", "preset": "audio-aac"}
    for state in ("completed", "failed", "cancelled"):
        assert sample("mpr_gateway_jobs_finished_total", **audio, state=state) == 1.0
        assert sample("mpr_gateway_job_duration_seconds_count", **audio, state=state) == 1.0
    assert sample("mpr_gateway_job_failures_total", kind="audio", reason="timeout") == 1.0
    assert sample("mpr_gateway_jobs_created_total", kind="audio", origin="api") == 3.0


async def test_an_asset_whose_probe_failed_is_refused_with_the_probe_reason(
    service, store: FakeStore
):
    broken = asset(
        "v/broken.mp4", probe_status=ProbeStatus.FAILED, probe_error="moov atom not found"
    )
    store.assets[broken.id] = broken
    for request in (
        JobRequest(source_key="v/broken.mp4", kind="audio"),
        JobRequest(asset_id=broken.id, kind="audio"),
    ):
        with pytest.raises(InvalidRequest, match="moov atom not found") as refused:
            await service.create(request)
        assert refused.value.details["probe_error"] == "moov atom not found"
    assert store.jobs == {} and store.outbox == []
