"""Uploads without S3 credentials: presigned PUT and multipart URLs against the real S3 server,
completion registering the asset through the real catalog, abort and the TTL sweep."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from mpr_catalog.bootstrap import bootstrap as catalog_bootstrap
from mpr_catalog.bootstrap import running as catalog_running
from mpr_catalog.settings import CatalogSettings
from mpr_gateway.adapters.uploads import prepare_buckets
from mpr_shared import storage
from tests.conftest import bucket_pair, endpoints_env, postgres_database
from tests.integration.gateway.conftest import AUTH, Stack, gateway_settings, running_stack
from tests.support.media import make_video

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
PART = 5 * MiB  # S3's smallest part but the last


@pytest.fixture(scope="module")
def upload_buckets(s3_client) -> Iterator[tuple[str, str]]:
    """One (input, output) bucket pair for the module: every test uses keys of its own."""
    for pair in bucket_pair(s3_client):
        yield pair
        for name in pair:  # a bucket with incomplete uploads cannot be deleted
            uploads = storage.list_multipart_uploads(name, client=s3_client)
            storage.abort_multipart_uploads(name, uploads, client=s3_client)


@pytest.fixture(scope="module")
def upload_env(amqp_url: str, s3, postgres_server: str, upload_buckets) -> Iterator[dict]:
    """The gateway's and the catalog's environment, on a migrated PostgreSQL database."""
    for database_url in postgres_database(postgres_server):
        yield endpoints_env(amqp_url, s3, upload_buckets, database_url) | {
            "OUTBOX_POLL_SECONDS": "0.2"
        }


@pytest.fixture(scope="module")
async def stack(upload_env: dict, upload_buckets) -> AsyncIterator[Stack]:
    settings = gateway_settings(
        upload_env,
        upload_env["DATABASE_URL"],
        UPLOAD_MULTIPART_THRESHOLD_BYTES=str(PART),
        UPLOAD_PART_SIZE_BYTES=str(PART),
        MAX_UPLOAD_BYTES=str(64 * MiB),
        UPLOAD_SWEEP_SECONDS="0",
        UPLOAD_REGISTER_TIMEOUT_SECONDS="2",
    )
    async for s in running_stack(settings, upload_buckets):
        yield s


@pytest.fixture(scope="module")
async def catalog(upload_env: dict, stack: Stack) -> AsyncIterator[None]:
    settings = CatalogSettings(**(upload_env | {"SCAN_INTERVAL_SECONDS": "0"}))
    async with catalog_running(catalog_bootstrap(settings)):
        yield


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("uploads") / "clip.mp4"
    return make_video(path, seconds=1.0, size="160x90")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """11 MiB: three parts of 5, 5 and 1 MiB."""
    return os.urandom(11 * MiB)


async def start(stack: Stack, **body) -> httpx.Response:
    return await stack.client.post("/api/uploads", json=body, headers=AUTH)


async def put(url: str, data: bytes) -> httpx.Response:
    """A PUT from a client that holds no credentials: only the presigned URL."""
    async with httpx.AsyncClient(timeout=30) as s3:
        response = await s3.put(url, content=data)
    response.raise_for_status()
    return response


async def wait_probed(stack: Stack, asset_id: str, timeout: float = 20.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            asset = (await stack.client.get(f"/api/assets/{asset_id}", headers=AUTH)).json()
            if asset["probe_status"] != "pending":
                return asset
            await asyncio.sleep(0.1)


async def test_a_single_put_upload_is_registered_and_probed_at_once(stack: Stack, catalog, clip):
    data = clip.read_bytes()
    created = await start(stack, filename="dir\\clip.mp4", size=len(data), content_type="video/mp4")
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["mode"] == "single" and upload["key"] == "clip.mp4" and upload["parts"] == []
    assert upload["bucket"] == stack.bucket_in and upload["status"] == "pending"
    assert created.headers["location"] == f"/api/uploads/{upload['id']}"

    with pytest.raises(httpx.HTTPStatusError, match="403"):  # more than declared: refused
        await put(upload["url"], data + b"more")
    await put(upload["url"], data)
    done = await stack.client.post(f"/api/uploads/{upload['id']}/complete", headers=AUTH)

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["asset_id"]
    s3 = storage.get_s3_client(stack.settings)
    assert s3.head_object(Bucket=stack.bucket_in, Key="clip.mp4")["ContentLength"] == len(data)
    listed = await stack.client.get("/api/assets", params={"prefix": "clip.mp4"}, headers=AUTH)
    assert [a["id"] for a in listed.json()["items"]] == [done.json()["asset_id"]]
    asset = await wait_probed(stack, done.json()["asset_id"])
    assert asset["probe_status"] == "ok" and asset["duration_seconds"] == pytest.approx(1.0, 0.1)
    # Completing again changes nothing; the key is now taken.
    again = await stack.client.post(f"/api/uploads/{upload['id']}/complete", headers=AUTH)
    assert again.json()["asset_id"] == done.json()["asset_id"]
    taken = await start(stack, key="clip.mp4", size=10)
    assert taken.status_code == 409 and "overwrite" in taken.json()["error"]["message"]
    assert (await start(stack, key="clip.mp4", size=10, overwrite=True)).status_code == 201


def multipart_uploads(stack: Stack, prefix: str) -> list[storage.MultipartUpload]:
    s3 = storage.get_s3_client(stack.settings)
    return list(storage.list_multipart_uploads(stack.bucket_in, prefix, client=s3))


async def test_a_multipart_upload_retries_a_part_and_completes_without_etags(
    stack: Stack, catalog, big_file: bytes
):
    upload = (await start(stack, key="big/movie.mkv", size=len(big_file))).json()
    assert upload["mode"] == "multipart" and upload["part_size"] == PART
    urls = {p["part_number"]: p["url"] for p in upload["parts"]}
    assert sorted(urls) == [1, 2, 3]
    chunks = {n: big_file[(n - 1) * PART : n * PART] for n in urls}
    await put(urls[1], chunks[1])
    await put(urls[3], chunks[3])
    # The network cut mid-part: S3 refuses the short body (its Content-Length is signed).
    with pytest.raises(httpx.HTTPStatusError, match="403"):
        await put(urls[2], chunks[2][:MiB])
    missing = await stack.client.post(f"/api/uploads/{upload['id']}/complete", headers=AUTH)
    assert missing.status_code == 409
    assert missing.json()["error"]["details"] == {"missing": [2]}
    fresh = await stack.client.post(
        f"/api/uploads/{upload['id']}/parts", json={"part_numbers": [2]}, headers=AUTH
    )
    assert [p["part_number"] for p in fresh.json()["parts"]] == [2]
    await put(fresh.json()["parts"][0]["url"], chunks[2])
    done = await stack.client.post(f"/api/uploads/{upload['id']}/complete", headers=AUTH)

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["asset_id"]
    s3 = storage.get_s3_client(stack.settings)
    body = s3.get_object(Bucket=stack.bucket_in, Key="big/movie.mkv")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(big_file).digest()
    assert not multipart_uploads(stack, "big/")
    # Registered through the outbox, once, correlated with the upload.
    commands = [r for r in await stack.outbox() if '"big/movie.mkv"' in r.body]
    assert [(c.message_type, c.correlation_id) for c in commands] == [
        ("RegisterObject", upload["id"])
    ]


async def test_delete_aborts_the_multipart_upload(stack: Stack, big_file: bytes):
    upload = (await start(stack, key="gone/a.mp4", size=len(big_file))).json()
    await put(upload["parts"][0]["url"], big_file[:PART])
    assert len(multipart_uploads(stack, "gone/")) == 1

    deleted = await stack.client.delete(f"/api/uploads/{upload['id']}", headers=AUTH)

    assert deleted.status_code == 204
    assert not multipart_uploads(stack, "gone/")
    read = await stack.client.get(f"/api/uploads/{upload['id']}", headers=AUTH)
    assert read.json()["status"] == "aborted" and read.json()["parts"] == []
    assert (
        await stack.client.delete(f"/api/uploads/{upload['id']}", headers=AUTH)
    ).status_code == 204
    late = await stack.client.post(f"/api/uploads/{upload['id']}/complete", headers=AUTH)
    assert late.status_code == 409 and "aborted" in late.json()["error"]["message"]


async def test_the_sweep_expires_old_uploads_and_aborts_orphaned_multipart_uploads(
    stack: Stack, big_file: bytes
):
    upload = (await start(stack, key="sweep/left.mp4", size=len(big_file))).json()
    s3 = storage.get_s3_client(stack.settings)
    s3.create_multipart_upload(Bucket=stack.bucket_in, Key="sweep/orphan.mp4")  # not via MPR
    uploads = stack.container.uploads
    ttl = uploads.limits.ttl_seconds

    assert await uploads.sweep() == 0  # nothing is old yet
    assert len(multipart_uploads(stack, "sweep/")) == 2
    later = datetime.now(UTC) + timedelta(seconds=ttl + 60)
    assert await dataclasses.replace(uploads, clock=lambda: later).sweep() >= 2

    assert not multipart_uploads(stack, "sweep/")
    read = await stack.client.get(f"/api/uploads/{upload['id']}", headers=AUTH)
    assert read.json()["status"] == "expired"


async def test_refused_uploads_say_why(stack: Stack):
    cases = {
        "../escape.mp4": "'..'",
        "a\u202egpj.mp4": "U+202E RIGHT-TO-LEFT OVERRIDE",
        "notes.txt": "supported media extension",
        "folder/": "not a prefix",
    }
    for key, reason in cases.items():
        refused = await start(stack, key=key, size=10)
        assert refused.status_code == 422, key
        assert reason in refused.json()["error"]["message"], refused.json()
    assert (await start(stack, size=10)).status_code == 422  # neither key nor filename
    too_big = await start(stack, key="huge.mp4", size=64 * MiB + 1)
    assert too_big.status_code == 413
    assert "MAX_UPLOAD_BYTES" in too_big.json()["error"]["message"]
    missing = await stack.client.get(
        f"/api/uploads/{'0' * 8}-0000-0000-0000-{'0' * 12}", headers=AUTH
    )
    assert missing.status_code == 404
    assert (
        await stack.client.post("/api/uploads", json={"key": "a.mp4", "size": 1})
    ).status_code == 401


async def test_browsers_may_put_to_the_input_bucket_and_read_the_output_bucket(stack: Stack):
    """The gateway sets bucket CORS at start-up where the server has it (SeaweedFS does)."""
    await prepare_buckets(stack.settings, ["http://127.0.0.1:8000"], 3600)
    await prepare_buckets(stack.settings, ["http://127.0.0.1:8000"], 3600)  # idempotent
    s3 = storage.get_s3_client(stack.settings)
    [rule] = s3.get_bucket_cors(Bucket=stack.bucket_in)["CORSRules"]
    assert set(rule["AllowedMethods"]) == {"PUT", "GET", "HEAD"}
    async with httpx.AsyncClient() as browser:
        preflight = await browser.options(
            f"{stack.settings.s3_endpoint_url}/{stack.bucket_in}/clip.mp4?partNumber=1",
            headers={
                "Origin": "http://127.0.0.1:8000",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:8000"
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert "ETag" in preflight.headers.get("access-control-expose-headers", "")
    out = s3.get_bucket_cors(Bucket=stack.bucket_out)["CORSRules"]
    assert [set(r["AllowedMethods"]) for r in out] == [{"GET", "HEAD"}]
