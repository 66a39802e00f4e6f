"""Catalog settings: defaults work locally; a wrong auto-job preset is refused at startup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mpr_catalog.settings import CatalogSettings


def test_defaults() -> None:
    s = CatalogSettings()
    assert s.auto_transcode_preset is None and s.health_port is None
    assert s.scan_interval_seconds == 0 and s.scan_batch_size == 1000
    assert s.events_routing_key == s.s3_bucket_in


def test_valid_preset_and_blank_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTO_TRANSCODE_PRESET", "h264-720p")
    monkeypatch.setenv("HEALTH_PORT", "")
    s = CatalogSettings()
    assert s.auto_transcode_preset == "h264-720p" and s.health_port is None
    monkeypatch.setenv("AUTO_TRANSCODE_PRESET", " ")
    assert CatalogSettings().auto_transcode_preset is None


def test_unknown_preset_is_refused_with_the_valid_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTO_TRANSCODE_PRESET", "h264-721p")
    with pytest.raises(ValidationError) as caught:
        CatalogSettings()
    message = str(caught.value)
    assert "AUTO_TRANSCODE_PRESET='h264-721p' is not a preset" in message
    assert "h264-720p" in message and "hls-h264" in message


def test_production_refuses_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPR_ENV", "production")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "minioadmin")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "minioadmin")
    with pytest.raises(ValidationError, match="AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"):
        CatalogSettings()
