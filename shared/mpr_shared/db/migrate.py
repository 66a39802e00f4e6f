"""Alembic migrations, runnable without an ini file: ``python -m mpr_shared.db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from mpr_shared.settings import normalize_database_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
