"""SQLAlchemy 2.0 models. Each table has exactly one writing service (see ARCHITECTURE.md).

- ``assets``, ``catalog_outbox``: written by the catalog.
- ``jobs``, ``gateway_outbox``, ``workers``: written by the gateway (the owner of job state;
  ``workers`` from the transcoders' heartbeats).
- ``uploads``: written by the gateway (presigned uploads into the input bucket).
Other services may read them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType}


class Asset(Base):
    """A media object in the input bucket. Written by the catalog only."""

    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("bucket", "key", name="uq_assets_bucket_key"),
        Index("ix_assets_status_key", "status", "key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(String(1024))
    media_type: Mapped[str] = mapped_column(String(8))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(128), default="")
    # active | deleted; deleted assets keep their job history.
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Highest S3 notification sequencer applied; older events are ignored.
    sequencer: Mapped[str | None] = mapped_column(String(64), default=None)
    probe_status: Mapped[str] = mapped_column(String(16), default="pending")
    probe_error: Mapped[str | None] = mapped_column(Text, default=None)
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    duration_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Job(Base):
    """A media job and its lifecycle. Written by the gateway only."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_asset_id", "asset_id"),
        # Keyset pagination: newest first, filtered by kind or asset.
        Index("ix_jobs_created_id", "created_at", "id"),
        Index("ix_jobs_kind_created", "kind", "created_at"),
        Index("ix_jobs_asset_created", "asset_id", "created_at"),
        # The last 24 hours' figures (GET /api/stats).
        Index("ix_jobs_finished_at", "finished_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("assets.id"), default=None)
    source_bucket: Mapped[str] = mapped_column(String(63))
    source_key: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(16))
    preset: Mapped[str | None] = mapped_column(String(64), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    output_bucket: Mapped[str] = mapped_column(String(63))
    output_key: Mapped[str] = mapped_column(String(1024))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    worker: Mapped[str | None] = mapped_column(String(128), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_lines: Mapped[list[Any] | None] = mapped_column(JSONType, default=None)
    outputs: Mapped[list[Any] | None] = mapped_column(JSONType, default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None, unique=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # The latest JobProgress (null until one arrives) and FFmpeg's log tail at the end.
    fps: Mapped[float | None] = mapped_column(Float, default=None)
    speed: Mapped[float | None] = mapped_column(Float, default=None)
    eta_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    out_time_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    log_tail: Mapped[list[Any] | None] = mapped_column(JSONType, default=None)
    bytes_out: Mapped[int | None] = mapped_column(BigInteger, default=None)

    # rabbitmq | stepfunctions: where the job's attempts run (the gateway's EXECUTOR).
    executor: Mapped[str] = mapped_column(String(16), default="rabbitmq", server_default="rabbitmq")


class Worker(Base):
    """A transcoder replica as its heartbeats describe it. Written by the gateway only."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_last_seen", "last_seen"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the replica id
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    ffmpeg_version: Mapped[str | None] = mapped_column(String(128), default=None)
    version: Mapped[str] = mapped_column(String(64))
    current_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    current_job_progress: Mapped[float | None] = mapped_column(Float, default=None)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    interval_seconds: Mapped[float] = mapped_column(Float)
    # When the replica sent its latest heartbeat (its clock; orders them) and when the
    # gateway received it (the gateway's clock; decides liveness).
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Upload(Base):
    """A presigned upload into the input bucket, from start to completion. Written by the
    gateway only."""

    __tablename__ = "uploads"
    # The TTL sweep reads pending uploads oldest first.
    __table_args__ = (Index("ix_uploads_status_created", "status", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(255), default=None)
    # single | multipart
    mode: Mapped[str] = mapped_column(String(16))
    part_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # S3's UploadId of a multipart upload.
    multipart_id: Mapped[str | None] = mapped_column(String(1024), default=None)
    # pending | completed | aborted | expired
    status: Mapped[str] = mapped_column(String(16), default="pending")
    client: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class _OutboxColumns:
    """Messages saved in the same transaction as the state change, published afterwards."""

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)  # the message id
    exchange: Mapped[str] = mapped_column(String(255))
    routing_key: Mapped[str] = mapped_column(String(255))
    message_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    priority: Mapped[int | None] = mapped_column(Integer, default=None)
    correlation_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class GatewayOutbox(_OutboxColumns, Base):
    """Commands and events the gateway owes the broker, or a job executor (``target``: a
    ProcessMedia/CancelJob row with target stepfunctions starts/stops an execution instead).
    Written by the gateway only."""

    __tablename__ = "gateway_outbox"
    __table_args__ = (Index("ix_gateway_outbox_pending", "published_at", "created_at"),)

    target: Mapped[str] = mapped_column(String(16), default="rabbitmq", server_default="rabbitmq")


class CatalogOutbox(_OutboxColumns, Base):
    """Events the catalog owes the broker. Written by the catalog only."""

    __tablename__ = "catalog_outbox"
    __table_args__ = (Index("ix_catalog_outbox_pending", "published_at", "created_at"),)


OutboxRow = GatewayOutbox | CatalogOutbox

# Which service writes which table (ARCHITECTURE.md). On PostgreSQL migration 0003 enforces
# it with one role per service; tests/integration/shared/test_database_roles.py checks both agree.
TABLE_WRITERS: dict[str, str] = {
    "assets": "catalog",
    "catalog_outbox": "catalog",
    "jobs": "gateway",
    "gateway_outbox": "gateway",
    "workers": "gateway",
    "uploads": "gateway",
}
