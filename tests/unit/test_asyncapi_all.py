"""`make docs` documents every message of every service (AsyncAPI from each build_broker)."""

from __future__ import annotations

import json
from pathlib import Path

from mpr_shared import contracts
from scripts import asyncapi


def test_every_service_builds_and_every_message_is_documented(tmp_path: Path) -> None:
    documents = asyncapi.generate(tmp_path, strict=True)
    assert {"gateway", "catalog", "transcoder", "notifier", "merged"} <= set(documents)
    schemas = json.dumps(documents["merged"]["components"]["schemas"])
    messages = [
        cls
        for cls in vars(contracts).values()
        if isinstance(cls, type)
        and issubclass(cls, contracts.Message)
        and cls not in (contracts.Message, contracts.Command, contracts.Event)
    ]
    assert len(messages) == 17  # 5 commands, 12 events
    missing = [cls.__name__ for cls in messages if f'"{cls.__name__}"' not in schemas]
    assert missing == [], f"messages without AsyncAPI documentation: {missing}"
