"""One role per service on PostgreSQL: writes only on its own tables, reads on what it reads.

A service acts as its role (DATABASE_ROLE, mpr_shared.db), so a write to another service's
table is refused by the database, not only by convention. Roles are NOLOGIN and shared by
every database of the cluster: created when missing, never dropped here. The migrating user
is made a member, so services connecting as that user can act as the roles.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# role: (tables it writes, tables it only reads). A snapshot: later tables get their own
# migration with their owner's grants.
ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mpr_gateway": (("jobs", "gateway_outbox"), ("assets",)),
    "mpr_catalog": (("assets", "catalog_outbox"), ()),
    "mpr_transcoder": ((), ("jobs",)),
    "mpr_notifier": ((), ("jobs",)),
}


def _create_role(role: str) -> None:
    # Another database's migration may create it at the same moment: both outcomes are fine.
    op.execute(
        f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )


def _on_schema(statement: str) -> str:
    """``statement`` with %I as the schema the tables live in (public unless configured)."""
    return f"DO $$ BEGIN EXECUTE format('{statement}', current_schema()); END $$"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no roles: one file, one writer per process
    for role, (writes, reads) in ROLES.items():
        _create_role(role)
        op.execute(f"GRANT {role} TO CURRENT_USER")
        op.execute(_on_schema(f"GRANT USAGE ON SCHEMA %I TO {role}"))
        if writes:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(writes)} TO {role}")
        if reads:
            op.execute(f"GRANT SELECT ON {', '.join(reads)} TO {role}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for role, (writes, reads) in ROLES.items():
        op.execute(f"REVOKE ALL ON {', '.join(writes + reads)} FROM {role}")
        op.execute(_on_schema(f"REVOKE USAGE ON SCHEMA %I FROM {role}"))
