"""The spec's storage module against the real S3 server."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from mpr_shared import storage
from mpr_shared.settings import CommonSettings


@pytest.fixture
def client(common_settings: CommonSettings):
    return storage.get_s3_client(common_settings)


def test_list_filters_by_extension_case_insensitively_and_paginates(client, buckets):
    bucket_in, _ = buckets
    keys = [f"dir/clip{i}.MP4" for i in range(7)] + ["a b+c%.mkv", "ünï/cödé.flac", "notes.txt"]
    for key in keys:
        client.put_object(Bucket=bucket_in, Key=key, Body=b"x")
    listed = list(storage.list_objects(bucket_in, client=client, page_size=3))
    assert sorted(o.key for o in listed) == sorted(k for k in keys if k != "notes.txt")
    assert all(o.size == 1 and o.etag for o in listed)
    assert [o.key for o in storage.list_objects(bucket_in, prefix="dir/", client=client)] == [
        f"dir/clip{i}.MP4" for i in range(7)
    ]
    assert len(list(storage.list_objects(bucket_in, extensions=None, client=client))) == 10


def test_upload_download_round_trip_multipart(client, buckets, tmp_path: Path):
    _bucket_in, bucket_out = buckets
    src = tmp_path / "big.mp4"
    src.write_bytes(os.urandom(20 * 1024 * 1024))  # above the multipart threshold
    size = storage.upload_file(src, "out/big.mp4", bucket_out, client=client)
    assert size == src.stat().st_size
    head = client.head_object(Bucket=bucket_out, Key="out/big.mp4")
    assert head["ContentLength"] == size and head["ContentType"] == "video/mp4"

    temp = storage.download_to_temp("out/big.mp4", bucket_out, dir=tmp_path, client=client)
    try:
        assert temp.suffix == ".mp4" and temp.read_bytes() == src.read_bytes()
    finally:
        temp.unlink()
    dest = storage.download_file("out/big.mp4", tmp_path / "x" / "y.mp4", bucket_out, client=client)
    assert dest.stat().st_size == size


def test_download_to_temp_cleans_up_when_the_object_is_missing(client, buckets, tmp_path: Path):
    with pytest.raises(Exception, match=r"404|Not Found|NoSuchKey"):
        storage.download_to_temp("missing.mp4", buckets[0], dir=tmp_path, client=client)
    assert list(tmp_path.iterdir()) == []


def test_presigned_url_serves_the_object(client, buckets):
    _, bucket_out = buckets
    client.put_object(Bucket=bucket_out, Key="a b/ç.mp4", Body=b"hello")
    url = storage.get_presigned_url("a b/ç.mp4", bucket_out, expires_in=60, client=client)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"hello"


def test_bucket_names_come_from_settings(monkeypatch):
    monkeypatch.setenv("S3_BUCKET_IN", "custom-in")
    storage.common_settings.cache_clear()
    try:
        assert storage.BUCKET_IN == "custom-in"
        assert storage.BUCKET_OUT == "mpr-media-out"
    finally:
        storage.common_settings.cache_clear()
