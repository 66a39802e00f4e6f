"""Broadcast: what SSE clients receive, indexed by job and asset."""

from __future__ import annotations

import uuid

from mpr_notifier.application.broadcast import broadcast, event_payload
from mpr_notifier.application.filters import EventFilter
from mpr_notifier.application.hub import EventHub
from mpr_shared.contracts import AssetProbed, JobCompleted, OutputFile, ProbeStatus


def test_payload_is_the_contract_plus_its_type() -> None:
    event = JobCompleted(
        job_id=uuid.uuid4(), outputs=[OutputFile(key="a/out.mp4", bucket="out", size_bytes=10)]
    )
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
