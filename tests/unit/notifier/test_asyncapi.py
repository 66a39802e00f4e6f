"""`make docs`: the AsyncAPI generator documents the notifier's channels and every event."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from mpr_shared.contracts import EVENTS_BY_ROUTING_KEY, JOB_EVENTS
from scripts import asyncapi


def message_schemas(document: dict, channel: str) -> set[str]:
    """Schema names a channel's message can carry."""
    ref = document["channels"][channel]["messages"]["SubscribeMessage"]["$ref"]
    message = document["components"]["messages"][unquote(ref.rsplit("/", 1)[1])]
    return {one["$ref"].rsplit("/", 1)[1] for one in message["payload"]["oneOf"]}


def test_generator_writes_notifier_and_merged_documents(tmp_path: Path) -> None:
    documents = asyncapi.generate(tmp_path)  # services that do not build yet are skipped
    notifier = json.loads((tmp_path / "asyncapi-notifier.json").read_text())
    assert notifier == documents["notifier"]
    assert notifier["asyncapi"].startswith("3.")
    assert set(notifier["channels"]) == {"mpr.notifier.live.<replica>", "mpr.notifier.webhooks"}
    live = notifier["channels"]["mpr.notifier.live.<replica>"]
    assert live["bindings"]["amqp"]["queue"]["name"] == "mpr.notifier.live.<replica>"
    every_event = {cls.__name__ for cls in EVENTS_BY_ROUTING_KEY.values()}
    assert every_event <= message_schemas(notifier, "mpr.notifier.live.<replica>")
    job_events = {cls.__name__ for cls in JOB_EVENTS}
    assert job_events <= message_schemas(notifier, "mpr.notifier.webhooks")
    assert "description" in notifier["components"]["schemas"]["JobFailed"]["properties"]["reason"]
    # No caller secrets or hosts leak into the documents.
    assert notifier["servers"]["development"]["host"] == "127.0.0.1:5672"
    merged = json.loads((tmp_path / "asyncapi.json").read_text())
    assert set(notifier["channels"]) <= set(merged["channels"])
    assert yaml.safe_load((tmp_path / "asyncapi-notifier.yaml").read_text()) == notifier


def test_strict_mode_and_unknown_services_fail(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        asyncapi.main(["--out", str(tmp_path), "no-such-service"])
    documents = asyncapi.generate(tmp_path, ["notifier"], strict=True)
    assert set(documents) == {"notifier", "merged"}
