"""scripts/infra.sh and scripts/dev.sh, and the S3 behaviour the storage module relies on.

Runs against what ``make infra`` started (the conftest's endpoints).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.env import clean_environ

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
MIB = 1024 * 1024
# Tests of the local stack itself; meaningless when the endpoints are elsewhere.
local_stack = pytest.mark.skipif(
    any(os.environ.get(f"MPR_TEST_{n}") for n in ("S3_ENDPOINT", "AMQP_URL", "DATABASE_URL")),
    reason="MPR_TEST_* endpoints point away from the local stack",
)


def _run(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environ(NO_COLOR="1", **env),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- infra.sh ------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (make install adds it)"
)
def test_scripts_are_shellcheck_clean():
    result = _run("shellcheck", "-x", *map(str, sorted(SCRIPTS.glob("*.sh"))))

    assert result.returncode == 0, result.stdout


@local_stack
def test_up_is_a_quick_no_op_when_everything_runs(s3, amqp_url, postgres_server):
    started = time.monotonic()
    result = _run(str(SCRIPTS / "infra.sh"), "up", "--defaults")
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting" not in result.stdout
    assert elapsed < 10


@local_stack
def test_status_with_defaults_reports_every_component_up_whatever_the_shell_says(
    s3, amqp_url, postgres_server
):
    """make test runs `up --defaults`: a developer's exported DATABASE_URL must not matter."""
    elsewhere = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x", "S3_BUCKET_IN": "theirs"}

    result = _run(str(SCRIPTS / "infra.sh"), "status", "--defaults", **elsewhere)

    assert result.returncode == 0, result.stdout + result.stderr
    for line in (
        "✓ rabbitmq",
        "✓ postgresql 127.0.0.1:5432",
        "✓ s3",
        "mpr-media-in, mpr-media-out",
        "✓ ffmpeg",
    ):
        assert line in result.stdout


def test_unknown_command_prints_usage():
    result = _run(str(SCRIPTS / "infra.sh"), "sideways")

    assert result.returncode == 2
    assert "usage" in result.stderr


@local_stack
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="no local RabbitMQ")
def test_rabbitmq_consumer_timeout_is_raised(amqp_url):
    seconds = 6 * 3600  # what `infra.sh up --defaults` (make test) sets

    result = _run("rabbitmqctl", "-q", "eval", "application:get_env(rabbit, consumer_timeout).")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{{ok,{seconds * 1000}}}"


@local_stack
@pytest.mark.parametrize("database", ["mpr", "mpr_test"])
async def test_postgresql_databases_exist(postgres_server, database):
    import asyncpg

    connection = await asyncpg.connect(
        host="127.0.0.1", port=5432, user="postgres", database=database, timeout=5
    )
    try:
        assert await connection.fetchval("SELECT current_database()") == database
    finally:
        await connection.close()


# --- S3 behaviour the storage module relies on ---------------------------------------------


def test_put_head_get_list_delete(s3_client, buckets):
    bucket, _ = buckets
    key = "dir/clip one+two é.mp4"
    body = b"not really a video\n"

    put = s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="video/mp4")
    head = s3_client.head_object(Bucket=bucket, Key=key)
    got = s3_client.get_object(Bucket=bucket, Key=key)
    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]

    etag = f'"{hashlib.md5(body).hexdigest()}"'
    assert put["ETag"] == head["ETag"] == got["ETag"] == etag
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "video/mp4"
    assert got["Body"].read() == body
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [(key, len(body), etag)]

    s3_client.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as missing:
        s3_client.head_object(Bucket=bucket, Key=key)
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_get_of_a_missing_key_is_no_such_key(s3_client, buckets):
    with pytest.raises(ClientError) as missing:
        s3_client.get_object(Bucket=buckets[0], Key="absent.mp4")

    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


def test_range_get_for_streaming(s3_client, buckets):
    _, bucket = buckets
    s3_client.put_object(Bucket=bucket, Key="range.bin", Body=bytes(range(256)))

    part = s3_client.get_object(Bucket=bucket, Key="range.bin", Range="bytes=10-19")

    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == "bytes 10-19/256"
    assert part["Body"].read() == bytes(range(10, 20))


def test_multipart_upload_and_download(s3_client, buckets, tmp_path):
    _, bucket = buckets
    data = os.urandom(12 * MIB + 123)
    source, copy = tmp_path / "big.bin", tmp_path / "copy.bin"
    source.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)

    s3_client.upload_file(str(source), bucket, "big.bin", Config=config)
    head = s3_client.head_object(Bucket=bucket, Key="big.bin")
    s3_client.download_file(bucket, "big.bin", str(copy), Config=config)

    parts = [hashlib.md5(data[i : i + 5 * MIB]).digest() for i in range(0, len(data), 5 * MIB)]
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{hashlib.md5(b"".join(parts)).hexdigest()}-{len(parts)}"'
    assert copy.read_bytes() == data


def test_presigned_get_works_with_plain_curl(s3_client, buckets):
    _, bucket = buckets
    key = "presigned file+1.txt"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"signed")
    url = s3_client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
    )

    result = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", url], capture_output=True, text=True, timeout=30
    )

    assert result.stdout == "signed\n200"


def test_list_objects_v2_pages_with_continuation_tokens(s3_client, buckets):
    bucket, _ = buckets
    keys = [f"page/{i:03d}.mp4" for i in range(23)]
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")

    seen, token, pages = [], None, 0
    while True:
        kwargs = {"Bucket": bucket, "Prefix": "page/", "MaxKeys": 10}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3_client.list_objects_v2(**kwargs)
        pages += 1
        seen += [item["Key"] for item in page["Contents"]]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    paginated = [
        item["Key"]
        for page in s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="page/", PaginationConfig={"PageSize": 7}
        )
        for item in page["Contents"]
    ]

    assert pages == 3
    assert seen == paginated == keys


def test_deleting_a_non_empty_bucket_fails_as_on_aws(s3_client, buckets):
    bucket, _ = buckets
    s3_client.put_object(Bucket=bucket, Key="keep.mp4", Body=b"x")

    with pytest.raises(ClientError) as refused:
        s3_client.delete_bucket(Bucket=bucket)

    assert refused.value.response["Error"]["Code"] == "BucketNotEmpty"


def test_wrong_credentials_are_refused(s3, buckets):
    stranger = boto3.client(
        "s3",
        endpoint_url=s3.url,
        region_name="us-east-1",
        aws_access_key_id="nobody",
        aws_secret_access_key="wrong-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )

    with pytest.raises(ClientError) as refused:
        stranger.list_objects_v2(Bucket=buckets[0])

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# --- dev.sh and its supervisor ---------------------------------------------------------------

DUMMY_SERVICE = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    child = subprocess.Popen(["sleep", "600"])  # stands in for ffmpeg

    def stop(*_):
        time.sleep(0.5)  # had the whole group been signalled, the child would be dead by now
        state = "child-alive" if child.poll() is None else "child-dead"
        print(__package__, "stopping", state, flush=True)
        sys.exit(0)  # leaves the child behind, as a service that dies mid-job leaves FFmpeg

    signal.signal(signal.SIGTERM, stop)
    names = ("GATEWAY_PORT", "NOTIFIER_PORT", "HEALTH_PORT")
    ports = "/".join(os.environ.get(name, "-") for name in names)
    print(__package__, "ready", os.getpid(), child.pid, ports, os.environ["MPR_API_KEYS"])
    while True:
        time.sleep(1)
    """
)


@pytest.fixture
def dummy_services(tmp_path) -> Path:
    """Packages that shadow the four services with ones that only wait for SIGTERM."""
    for name in ("mpr_gateway", "mpr_catalog", "mpr_transcoder", "mpr_notifier"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        (tmp_path / name / "__main__.py").write_text(DUMMY_SERVICE)
    return tmp_path


def _alive(pid: int, group: bool = False) -> bool:
    """Is the process (or any process of the group ``pid``) still there?"""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until(condition, seconds: float, what: str, log=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}\n{log()}")
        time.sleep(0.1)


class Dev:
    """scripts/dev.sh in its own session, its output in a file."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [str(SCRIPTS / "dev.sh")],
            cwd=ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=clean_environ(NO_COLOR="1", **env),
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self, needle: str) -> list[str]:
        """Text after the ``name |`` prefix of each line that contains ``needle``."""
        return [ln.split("| ", 1)[-1] for ln in self.output().splitlines() if needle in ln]

    def started(self) -> dict[str, list[int]]:
        """Pids each process was started with, in order, from the supervisor's log lines."""
        pids: dict[str, list[int]] = {}
        for line in self.lines(" started (pid "):
            name, _, rest = line.partition(" started (pid ")
            pids.setdefault(name, []).append(int(rest.split(",")[0]))
        return pids

    def stop(self) -> int:
        os.kill(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@local_stack
def test_dev_runs_every_service_and_sigterm_stops_them_all(s3, dummy_services, tmp_path):
    """Ports and keys reach each process; a crash is cleaned up and restarted; SIGTERM
    reaches each service before its children, and then nothing is left."""
    gateway, notifier, base = _free_port(), _free_port(), 20000 + os.getpid() % 20000
    dev = Dev(
        tmp_path / "dev.log",
        PYTHONPATH=str(dummy_services),
        TRANSCODERS="2",
        MPR_API_KEYS="dev:test-key",
        MPR_SKIP_MIGRATIONS="1",  # the real-services test below runs them
        GATEWAY_PORT=str(gateway),
        NOTIFIER_PORT=str(notifier),
        PORT=str(base),
    )
    try:
        _wait_until(lambda: len(dev.lines(" ready ")) == 5, 60, "5 ready lines", dev.output)
        ready = [line.split() for line in dev.lines(" ready ")]
        fixed = f"{gateway}/{notifier}"
        assert sorted((name, ports, keys) for name, _, _, _, ports, keys in ready) == [
            ("mpr_catalog", f"{fixed}/{base + 100}", "dev:test-key"),
            ("mpr_gateway", f"{fixed}/-", "dev:test-key"),
            ("mpr_notifier", f"{fixed}/-", "dev:test-key"),
            ("mpr_transcoder", f"{fixed}/{base + 200}", "dev:test-key"),
            ("mpr_transcoder", f"{fixed}/{base + 201}", "dev:test-key"),
        ], dev.output()
        pids = [int(pid) for _, _, service, child, _, _ in ready for pid in (service, child)]
        # A service that dies leaves its child (FFmpeg) behind: the supervisor ends it.
        crashed, orphan = (
            int(p) for p in next(r[2:4] for r in ready if r[4].endswith(f"/{base + 201}"))
        )
        os.kill(crashed, signal.SIGKILL)
        _wait_until(lambda: len(dev.lines(" ready ")) == 6, 60, "a 6th ready line", dev.output)
        pids += [int(pid) for pid in dev.lines(" ready ")[-1].split()[2:4]]
        orphan_gone = not _alive(orphan)

        returncode = dev.stop()
    finally:
        dev.kill()

    assert orphan_gone, dev.output()
    assert returncode == 143, dev.output()
    assert len(dev.lines(" stopping child-alive")) == 5, dev.output()
    assert "all stopped" in dev.output()
    assert [pid for pid in pids if _alive(pid)] == []


@local_stack
def test_dev_restarts_a_killed_transcoder_and_keeps_the_rest(amqp_url, s3, buckets, tmp_path):
    """The real services: a SIGKILLed transcoder comes back; nothing else moves.

    One replica (the test above covers several): each service takes seconds of CPU to start.
    """
    gateway, notifier, base = _free_port(), _free_port(), 20000 + (os.getpid() + 7) % 20000
    health = {
        "gateway.1": gateway,
        "catalog.1": base + 100,
        "transcoder.1": base + 200,
        "notifier.1": notifier,
    }
    dev = Dev(
        tmp_path / "dev.log",
        TRANSCODERS="1",
        MPR_API_KEYS="dev:test-key",
        AMQP_URL=amqp_url,
        S3_ENDPOINT_URL=s3.url,
        AWS_ACCESS_KEY_ID=s3.access_key,
        AWS_SECRET_ACCESS_KEY=s3.secret_key,
        S3_BUCKET_IN=buckets[0],
        S3_BUCKET_OUT=buckets[1],
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}",
        TRANSCODER_WORK_DIR=str(tmp_path / "work"),
        GATEWAY_PORT=str(gateway),
        NOTIFIER_PORT=str(notifier),
        PORT=str(base),
    )
    try:
        _wait_until(lambda: all(map(_healthy, health.values())), 90, "health", dev.output)
        first = dev.started()
        victim = first["transcoder.1"][0]

        os.kill(victim, signal.SIGKILL)
        _wait_until(lambda: len(dev.started()["transcoder.1"]) == 2, 30, "restart", dev.output)
        _wait_until(lambda: _healthy(health["transcoder.1"]), 60, "restarted health", dev.output)
        healthy_after = [name for name, port in health.items() if _healthy(port)]
        again = dev.started()

        returncode = dev.stop()
    finally:
        dev.kill()

    assert (tmp_path / "dev.db").exists(), "migrations did not run"
    assert "transcoder.1 killed by SIGKILL after" in dev.output()
    assert len(dev.lines("restarting in 1 s (restart 1 in a row)")) == 1, dev.output()
    assert again.pop("transcoder.1")[1] != victim
    assert again == {name: pids for name, pids in first.items() if name != "transcoder.1"}
    assert all(len(pids) == 1 for pids in first.values()), dev.output()
    assert healthy_after == list(health), dev.output()
    assert returncode == 143, dev.output()
    pids = [pid for started in dev.started().values() for pid in started]
    assert [pid for pid in pids if _alive(pid) or _alive(pid, group=True)] == []


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
