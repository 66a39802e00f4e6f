"""Catalog settings: every environment variable the catalog reads, in one place."""

from __future__ import annotations

from pydantic import Field, field_validator

from mpr_shared.contracts import JobKind
from mpr_shared.presets import PRESETS, Preset, get_preset
from mpr_shared.settings import CommonSettings


class CatalogSettings(CommonSettings):
    """Settings of the catalog (scan, probe, auto-ingest of bucket notifications)."""

    probe_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        validation_alias="PROBE_CONCURRENCY",
        description="ffprobe processes running at once.",
    )
    probe_timeout_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias="PROBE_TIMEOUT_SECONDS",
        description="Wall time of one ffprobe run before it is killed.",
    )
    probe_attempts: int = Field(
        3,
        ge=1,
        le=10,
        validation_alias="PROBE_ATTEMPTS",
        description="Tries of one probe when S3 is unreachable; the asset then stays pending.",
    )
    scan_interval_seconds: float = Field(
        0.0,
        ge=0,
        validation_alias="SCAN_INTERVAL_SECONDS",
        description="Period of the reconcile scan (0 = off). It also marks vanished objects.",
    )
    scan_batch_size: int = Field(
        1000,
        ge=1,
        le=1000,
        validation_alias="SCAN_BATCH_SIZE",
        # ListObjectsV2 returns at most 1000 keys per page; one page is one transaction.
        description="Objects per listing page and per database transaction.",
    )
    scan_concurrency: int = Field(
        2,
        ge=1,
        le=16,
        validation_alias="SCAN_CONCURRENCY",
        description="Scans listing the bucket at once; more wait their turn, and a scan of a "
        "prefix already being scanned waits for that scan's result instead.",
    )
    auto_transcode_preset: str | None = Field(
        None,
        validation_alias="AUTO_TRANSCODE_PRESET",
        description=(
            "Preset of a job created for every video asset that probes OK, new or changed, "
            "found by a notification or a scan (empty = off)."
        ),
    )
    outbox_poll_seconds: float = Field(
        1.0,
        gt=0,
        validation_alias="OUTBOX_POLL_SECONDS",
        description="How often the outbox relay looks for rows it was not woken for.",
    )
    health_host: str = Field(
        "127.0.0.1", validation_alias="HEALTH_HOST", description="Address the health app binds."
    )
    health_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias="HEALTH_PORT",
        description="Port of /api/health, /api/ready and /metrics (unset = no HTTP server).",
    )

    database_role: str | None = Field(
        "mpr_catalog",
        validation_alias="DATABASE_ROLE",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="PostgreSQL role the catalog acts as (writes only assets and "
        "catalog_outbox); empty: the login user's.",
    )

    @field_validator("auto_transcode_preset", "health_port", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("auto_transcode_preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is None:
            return None
        preset = PRESETS.get(value)
        usable = sorted(n for n, p in PRESETS.items() if p.kind is not JobKind.TRIM)
        if preset is None or preset.kind is JobKind.TRIM:
            raise ValueError(
                f"AUTO_TRANSCODE_PRESET={value!r} is not a preset; use one of: {', '.join(usable)}"
            )
        return value

    @property
    def auto_preset(self) -> Preset | None:
        """The preset of AUTO_TRANSCODE_PRESET (checked at startup), or None when off."""
        return get_preset(self.auto_transcode_preset) if self.auto_transcode_preset else None
