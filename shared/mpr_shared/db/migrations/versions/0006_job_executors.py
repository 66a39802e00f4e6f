"""Job executors: ``jobs.executor`` (rabbitmq | stepfunctions) and ``gateway_outbox.target``
(which relay dispatches a row: RabbitMQ, or Step Functions StartExecution/StopExecution).

Both are new columns of tables the gateway already writes: 0003's table-level grants cover
them (mpr_gateway writes both, mpr_transcoder and mpr_notifier read jobs), so no grant here.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A server default fills existing rows: every job so far ran on RabbitMQ.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("executor", sa.String(16), nullable=False, server_default="rabbitmq")
        )
    with op.batch_alter_table("gateway_outbox") as batch:
        batch.add_column(
            sa.Column("target", sa.String(16), nullable=False, server_default="rabbitmq")
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_outbox") as batch:
        batch.drop_column("target")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("executor")
