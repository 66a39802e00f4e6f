"""Application functions: broadcast to the hub, call webhooks (ports faked)."""

from __future__ import annotations

import json
import uuid

import pytest

from mpr_notifier.filters import EventFilter
from mpr_notifier.handlers import (
    JobStateLagging,
    WebhookFailed,
    WebhookResult,
    broadcast,
    call_webhook,
    event_payload,
)
from mpr_notifier.hub import EventHub
from mpr_shared.contracts import (
    AssetProbed,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    OutputFile,
    ProbeStatus,
)
from tests.unit.notifier.fakes import FakeSender, FakeTargets


def completed(job_id: uuid.UUID) -> JobCompleted:
    return JobCompleted(
        job_id=job_id, outputs=[OutputFile(key="a/out.mp4", bucket="out", size_bytes=10)]
    )


def test_payload_is_the_contract_plus_its_type() -> None:
    event = completed(uuid.uuid4())
    payload = event_payload(event)
    assert payload["type"] == "JobCompleted"
    assert payload["job_id"] == str(event.job_id)
    assert payload["outputs"][0]["key"] == "a/out.mp4"
    assert JobCompleted.model_validate(payload) == event  # tolerant readers ignore "type"


def test_broadcast_indexes_job_and_asset_ids() -> None:
    hub = EventHub()
    asset_id = uuid.uuid4()
    by_asset = hub.subscribe(EventFilter(asset_id=str(asset_id)))
    probed = AssetProbed(asset_id=asset_id, key="k.mp4", probe_status=ProbeStatus.OK)
    note = broadcast(probed, hub)
    assert note is not None
    assert (note.event, note.id, note.asset_id) == ("asset.probed", str(probed.id), str(asset_id))
    assert by_asset.pending == 1
    assert broadcast(probed, hub) is None  # redelivery


@pytest.mark.parametrize(
    "make",
    [
        completed,
        lambda job: JobFailed(job_id=job, reason="boom"),
        lambda job: JobCancelled(job_id=job),
    ],
)
async def test_terminal_events_call_the_webhook(make) -> None:
    job = uuid.uuid4()
    event = make(job)
    status = {"job.completed": "completed", "job.failed": "failed"}.get(
        event.ROUTING_KEY, "cancelled"
    )
    targets, sender = FakeTargets({job: "https://example.com/hook"}, status), FakeSender()
    assert await call_webhook(event, targets, sender) is WebhookResult.SENT
    [(url, message_id, body)] = sender.sent
    assert url == "https://example.com/hook"
    assert message_id == str(event.id)
    assert json.loads(body) == event_payload(event)


async def test_progress_is_not_a_webhook() -> None:
    targets, sender = FakeTargets(), FakeSender()
    event = JobProgress(job_id=uuid.uuid4(), percent=50)
    assert await call_webhook(event, targets, sender) is WebhookResult.NOT_TERMINAL
    assert targets.lookups == [] and sender.sent == []


async def test_job_without_url_sends_nothing() -> None:
    targets, sender = FakeTargets(), FakeSender()
    job = uuid.uuid4()
    assert await call_webhook(completed(job), targets, sender) is WebhookResult.NO_URL
    assert targets.lookups == [job] and sender.sent == []


async def test_delivery_failure_propagates_for_dead_lettering() -> None:
    job = uuid.uuid4()
    targets, sender = FakeTargets({job: "https://example.com/h"}), FakeSender(fail="HTTP 404")
    with pytest.raises(WebhookFailed, match="HTTP 404"):
        await call_webhook(completed(job), targets, sender)


async def test_webhook_waits_until_the_gateway_applied_the_event() -> None:
    job = uuid.uuid4()
    targets, sender = FakeTargets({job: "https://example.com/h"}, "running"), FakeSender()
    with pytest.raises(JobStateLagging):
        await call_webhook(completed(job), targets, sender)
    assert sender.sent == []


@pytest.mark.parametrize(("status", "attempt"), [("cancelled", 1), ("completed", 2)])
async def test_webhook_never_contradicts_the_job_state(status: str, attempt: int) -> None:
    job = uuid.uuid4()
    targets, sender = FakeTargets({job: "https://example.com/h"}), FakeSender()
    targets.states[job] = (status, attempt)  # cancelled meanwhile / a newer attempt
    assert await call_webhook(completed(job), targets, sender) is WebhookResult.STALE
    assert sender.sent == []
