"""Which job events the gateway's queue is bound to."""

from __future__ import annotations

from mpr_shared.contracts import JOB_EVENTS, JobQueued
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import EVENTS, GATEWAY_JOB_EVENT_KEYS, GATEWAY_JOB_EVENTS, durable_bindings


def test_the_gateway_binds_every_transcoder_event_and_not_its_own_job_queued():
    transcoder_events = {e.ROUTING_KEY for e in JOB_EVENTS if e is not JobQueued}
    assert set(GATEWAY_JOB_EVENT_KEYS) == transcoder_events
    [binding] = [b for b in durable_bindings(CommonSettings()) if b.queue is GATEWAY_JOB_EVENTS]
    assert binding.exchange is EVENTS
    assert binding.bound_keys == GATEWAY_JOB_EVENT_KEYS
    assert binding.stale_routing_keys == ("job.*",)
