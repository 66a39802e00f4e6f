"""The Step Functions definition is well formed and routes failures to the callback."""

from __future__ import annotations

import json
from pathlib import Path

ASL = Path(__file__).resolve().parents[3] / "deploy/aws/transcoder-state-machine.asl.json"


def test_every_transition_names_a_state_and_failures_are_reported():
    machine = json.loads(ASL.read_text())
    states = machine["States"]
    assert machine["StartAt"] in states
    targets = [s["Next"] for s in states.values() if "Next" in s]
    targets += [c["Next"] for s in states.values() for c in s.get("Catch", ())]
    assert set(targets) <= set(states)
    run = states["RunJob"]
    assert run["Catch"][0]["Next"] == "ReportFailure" and run["Catch"][0]["ResultPath"] == "$.error"
    retried = {e for r in run["Retry"] for e in r["ErrorEquals"]}
    assert {"TransientError", "CallbackFailed"} <= retried  # the handler's exception names
