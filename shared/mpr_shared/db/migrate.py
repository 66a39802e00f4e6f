"""Alembic migrations, runnable without an ini file: ``python -m mpr_shared.db upgrade``."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from alembic import command
from alembic.config import Config

from mpr_shared.settings import normalize_database_url

MIGRATIONS = Path(__file__).parent / "migrations"


DATABASE_URL = "database_url"  # the Config attribute env.py reads


def alembic_config(database_url: str) -> Config:
    """Alembic's config, with the URL as an attribute (env.py reads it), not an ini option."""
    # set_main_option goes through configparser interpolation: a URL-encoded password
    # (p%40ss) would crash it, and its error message would print the password.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes[DATABASE_URL] = normalize_database_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


_URL_PASSWORD = re.compile(r"(//[^:/@\s]*:)([^@\s]+)@")


def mask_password(text: str, database_url: str) -> str:
    """``text`` with the URL's password masked, as typed (``p%40ss``) and decoded (``p@ss``)."""
    for match in _URL_PASSWORD.finditer(database_url):
        for secret in {match.group(2), unquote(match.group(2))}:
            text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(r"\1***@", text)
