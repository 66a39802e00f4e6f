"""Where integration tests find RabbitMQ, S3 and PostgreSQL.

Order: 1) MPR_TEST_* environment variables; 2) testcontainers when a Docker engine answers;
3) the local services that ``make infra`` starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_S3 = "http://127.0.0.1:9000"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str


def docker_available() -> bool:
    if os.environ.get("MPR_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


def port_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _require(url: str, port: int, what: str) -> str:
    if not port_open(url, port):
        raise RuntimeError(
            f"{what} is not reachable at {url}. Run `make infra` (or set the MPR_TEST_* variable)."
        )
    return url


@contextlib.contextmanager
def amqp_endpoint() -> Iterator[str]:
    if url := os.environ.get("MPR_TEST_AMQP_URL"):
        yield url
    elif docker_available():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as rabbit:
            params = rabbit.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/"
    else:
        yield from _local_vhost(_require(LOCAL_AMQP, 5672, "RabbitMQ"))


def _local_vhost(base: str) -> Iterator[str]:
    """A throw-away vhost on the local broker, so tests never touch a running dev stack."""
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        yield base
        return
    vhost = f"mpr-test-{os.getpid()}"
    run = lambda *a: subprocess.run([ctl, *a], check=True, capture_output=True, timeout=60)  # noqa: E731
    run("add_vhost", vhost)
    run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield base.rstrip("/") + "/" + vhost
    finally:
        with contextlib.suppress(Exception):
            run("delete_vhost", vhost)


@contextlib.contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    key = os.environ.get("MPR_TEST_S3_ACCESS_KEY", "minioadmin")
    secret = os.environ.get("MPR_TEST_S3_SECRET_KEY", "minioadmin")
    if url := os.environ.get("MPR_TEST_S3_ENDPOINT"):
        yield S3Endpoint(url, key, secret)
    elif docker_available():
        from testcontainers.minio import MinioContainer

        with MinioContainer(access_key=key, secret_key=secret) as minio:
            host = minio.get_container_host_ip()
            yield S3Endpoint(f"http://{host}:{minio.get_exposed_port(9000)}", key, secret)
    else:
        yield S3Endpoint(_require(LOCAL_S3, 9000, "The S3 server"), key, secret)


@contextlib.contextmanager
def postgres_endpoint() -> Iterator[str]:
    """A PostgreSQL server URL (to its maintenance database)."""
    if url := os.environ.get("MPR_TEST_DATABASE_URL"):
        yield url
    elif docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield pg.get_connection_url()
    else:
        yield _require(LOCAL_POSTGRES, 5432, "PostgreSQL")
