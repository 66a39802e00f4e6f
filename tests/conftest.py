"""Shared fixtures. Tiers are markers: unit, service, integration, e2e (see pyproject.toml)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest

from mpr_shared.db import create_engine, session_factory
from mpr_shared.db.migrate import upgrade
from mpr_shared.settings import CommonSettings
from tests.support import databases, endpoints, env, leaks, tiers
from tests.support.endpoints import S3Endpoint

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """No developer's MPR variables in this process (nor its subprocesses); the tier check."""
    env.scrub(os.environ)
    tiers.register(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test's tier defaults to its folder (tests/unit → unit, …). Opt-in tests (the
    cluster's, `make test-cluster`) are deselected unless asked for by marker: they are not
    skipped for want of something, so they do not count as skips."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        tier = parts[0] if parts else ""
        if tier in tiers.TIERS and not any(item.iter_markers(name=tier)):
            item.add_marker(getattr(pytest.mark, tier))
    if "cluster" in (config.getoption("markexpr") or ""):
        return
    opt_in = [item for item in items if any(item.iter_markers(name="cluster"))]
    if opt_in:
        config.hook.pytest_deselected(items=opt_in)
        items[:] = [item for item in items if item not in opt_in]


# ---------------------------------------------------------------- real endpoints


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with endpoints.amqp_endpoint() as url:
        yield url


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    with endpoints.s3_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with endpoints.postgres_endpoint() as url:
        yield url


@pytest.fixture(scope="session")
def s3_client(s3: S3Endpoint):
    return boto3.client(
        "s3",
        endpoint_url=s3.url,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name="us-east-1",
        config=boto3.session.Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def _empty_and_delete(client, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def bucket_pair(client) -> Iterator[tuple[str, str]]:
    """A fresh (input, output) bucket pair, emptied and deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    pair = (f"mpr-test-in-{suffix}", f"mpr-test-out-{suffix}")
    for name in pair:
        client.create_bucket(Bucket=name)
    yield pair
    for name in pair:
        try:
            _empty_and_delete(client, name)
        except Exception as exc:  # leave no failure behind, but say so
            print(f"could not delete test bucket {name}: {exc}")


@pytest.fixture
def buckets(s3_client) -> Iterator[tuple[str, str]]:
    """A fresh (input, output) bucket pair for one test."""
    yield from bucket_pair(s3_client)


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get copies of it."""
    return databases.migrated_sqlite(tmp_path_factory.mktemp("migrated") / "mpr.db")


@pytest.fixture(scope="session")
def postgres_databases(postgres_server: str) -> Iterator[databases.PostgresDatabases]:
    """Fresh PostgreSQL databases, each a copy of one migrated template (Alembic runs once)."""
    dropper = databases.Dropper(postgres_server)
    try:
        pool = databases.PostgresDatabases(postgres_server, dropper)
        yield pool
        pool.close()
    finally:
        dropper.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: SQLite (the embedded default) and PostgreSQL."""
    if request.param == "sqlite":
        template = request.getfixturevalue("migrated_sqlite_file")
        yield databases.copy_sqlite(template, tmp_path / "mpr.db")
        return
    with request.getfixturevalue("postgres_databases").fresh() as url:
        yield url


def postgres_database(server: str) -> Iterator[str]:
    """A new, migrated database on ``server`` (its asyncpg URL), dropped afterwards."""
    name = f"mpr_test_{uuid.uuid4().hex[:12]}"
    _admin_exec(server, f'CREATE DATABASE "{name}"')
    try:
        url = databases.async_url(server, name)
        upgrade(url)
        yield url
    finally:
        _admin_exec(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_exec(server: str, sql: str) -> None:
    """Run CREATE/DROP DATABASE through asyncpg (autocommit), without a sync driver."""
    databases.admin_exec(server, sql)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


# ---------------------------------------------------------------- settings


@pytest.fixture
def service_env(amqp_url: str, s3: S3Endpoint, buckets: tuple[str, str], tmp_path: Path) -> dict:
    """Environment for a service under test: real endpoints, fresh buckets, SQLite file."""
    return endpoints_env(amqp_url, s3, buckets, f"sqlite+aiosqlite:///{tmp_path / 'mpr.db'}")


def endpoints_env(
    amqp_url: str, s3: S3Endpoint, buckets: tuple[str, str], database_url: str
) -> dict[str, str]:
    """A service's environment on these endpoints, buckets and database."""
    return {
        "MPR_ENV": "test",
        "AMQP_URL": amqp_url,
        "S3_ENDPOINT_URL": s3.url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": "us-east-1",
        "S3_BUCKET_IN": buckets[0],
        "S3_BUCKET_OUT": buckets[1],
        "DATABASE_URL": database_url,
    }


@pytest.fixture
def common_settings(service_env: dict) -> CommonSettings:
    return CommonSettings(**service_env)


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read a developer's .env, MPR variables or AWS credentials by accident.

    pytest_configure cleared them for the run; this also undoes what an earlier test set
    without monkeypatch. A test sets what it depends on (MPR_TEST_* endpoints stay).
    """
    monkeypatch.chdir(tmp_path)
    for name in env.stray(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.PINNED.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _release_broker_log_filters() -> Iterator[None]:
    """Each test's brokers are freed with it (tests/support/leaks.py: FastStream keeps them)."""
    with leaks.broker_log_filters_released():
        yield
