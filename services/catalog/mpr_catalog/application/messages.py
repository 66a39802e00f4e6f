"""The messages the catalog's changes cause (asset events, auto-job commands)."""

from __future__ import annotations

import uuid
from typing import Any

from mpr_catalog.domain.assets import AssetState, NewAsset, ObjectInfo
from mpr_catalog.domain.probe import ProbeOutcome
from mpr_shared.contracts import (
    AssetProbed,
    AssetRegistered,
    AssetRemoved,
    AssetUpdated,
    CreateJob,
    JobSpec,
)
from mpr_shared.presets import Preset

Envelope = dict[str, Any]
"""Envelope fields (correlation and causation ids) of the messages one trigger causes."""


def for_asset(asset_id: uuid.UUID) -> Envelope:
    """Envelope of messages about one asset: the asset id correlates its flow."""
    return {"correlation_id": str(asset_id)}


def registered(asset: NewAsset, envelope: Envelope) -> AssetRegistered:
    return AssetRegistered(
        **envelope,
        asset_id=asset.id,
        bucket=asset.bucket,
        key=asset.key,
        size_bytes=asset.size,
        etag=asset.etag,
        media_type=asset.media_type,
    )


def updated(asset: AssetState, obj: ObjectInfo, envelope: Envelope) -> AssetUpdated:
    return AssetUpdated(
        **envelope, asset_id=asset.id, key=asset.key, size_bytes=obj.size, etag=obj.etag
    )


def removed(asset: AssetState, envelope: Envelope) -> AssetRemoved:
    return AssetRemoved(**envelope, asset_id=asset.id, key=asset.key)


def probed(asset: AssetState, outcome: ProbeOutcome) -> AssetProbed:
    return AssetProbed(
        **for_asset(asset.id),
        asset_id=asset.id,
        key=asset.key,
        probe_status=outcome.status,
        duration_seconds=outcome.duration,
        error=outcome.error,
    )


def auto_job(asset: AssetState, preset: Preset) -> CreateJob:
    """The auto-job rule's order: one job per asset content and preset (idempotency key)."""
    return CreateJob(
        **for_asset(asset.id),
        source_bucket=asset.bucket,
        source_key=asset.key,
        asset_id=asset.id,
        spec=JobSpec(kind=preset.kind, preset=preset.name),
        idempotency_key=f"auto:{asset.id}:{asset.etag}:{preset.name}",
        requested_by="catalog:auto-transcode",
    )
