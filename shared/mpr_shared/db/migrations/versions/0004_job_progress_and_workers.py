"""Job progress columns (fps, speed, ETA, log tail, bytes out) and the ``workers`` table.

The new table gets its writer's grants here, as migration 0003 says later tables do: the
gateway writes ``workers``; no other service reads it. New ``jobs`` columns are covered by
0003's table-level grants.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
JOB_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[object]], ...] = (
    ("fps", sa.Float()),
    ("speed", sa.Float()),
    ("eta_seconds", sa.Float()),
    ("out_time_seconds", sa.Float()),
    ("log_tail", JSON),
    ("bytes_out", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, type_ in JOB_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("ffmpeg_version", sa.String(128), nullable=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("current_job_id", sa.Uuid(), nullable=True),
        sa.Column("current_job_progress", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )
    op.create_index("ix_workers_last_seen", "workers", ["last_seen"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON workers TO mpr_gateway")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("REVOKE ALL ON workers FROM mpr_gateway")
    op.drop_index("ix_workers_last_seen", table_name="workers")
    op.drop_table("workers")
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for name, _ in reversed(JOB_COLUMNS):
            batch.drop_column(name)
