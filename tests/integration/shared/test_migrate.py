"""`python -m mpr_shared.db` with a URL-encoded password: it migrates and never prints it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from mpr_shared.db.migrate import mask_password

PASSWORD = "p@ss%w0rd:/"  # URL-encoded: p%40ss%25w0rd%3A%2F
FORBIDDEN = ("p@ss", "p%40ss", "w0rd")


def with_password(url: str) -> str:
    parsed = make_url(url)
    if parsed.password:
        pytest.skip("the test PostgreSQL has a password of its own; this needs trust auth")
    return parsed.set(password=PASSWORD).render_as_string(hide_password=False)


def migrate(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MPR_"))}
    return subprocess.run(
        [sys.executable, "-m", "mpr_shared.db", *args],
        env={**env, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_url_encoded_password_migrates_down_and_up(database_url: str):
    url = with_password(database_url)
    assert "%40" in url and "%25" in url
    for args in (["downgrade", "base"], ["upgrade"]):
        result = migrate(url, *args)
        assert result.returncode == 0, result.stderr
        assert not any(secret in result.stdout + result.stderr for secret in FORBIDDEN)
    assert "Running upgrade 0002 -> 0003" in result.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_failed_migration_says_why_without_the_password(database_url: str):
    url = make_url(with_password(database_url)).set(database="mpr_no_such_database")
    result = migrate(url.render_as_string(hide_password=False), "upgrade")
    assert result.returncode == 1
    assert "upgrade failed" in result.stderr and "mpr_no_such_database" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(secret in result.stdout + result.stderr for secret in FORBIDDEN)


def test_mask_password_covers_typed_and_decoded_forms():
    url = "postgresql://mpr:p%40ss@db:5432/mpr"
    text = "could not parse postgresql://mpr:p%40ss@db:5432/mpr (password p@ss)"
    assert (
        mask_password(text, url)
        == "could not parse postgresql://mpr:***@db:5432/mpr (password ***)"
    )
