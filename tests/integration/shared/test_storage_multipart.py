"""Incomplete multipart uploads against the real S3 server: listed, aborted, expired by rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mpr_shared import storage
from mpr_shared.settings import CommonSettings


@pytest.fixture
def client(common_settings: CommonSettings):
    return storage.get_s3_client(common_settings)


def started(client, bucket: str, key: str) -> str:
    return client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]


def test_incomplete_uploads_are_listed_by_prefix_and_aborted(client, buckets):
    _, bucket = buckets
    ours = started(client, bucket, "jobs/a/out.mp4")
    started(client, bucket, "elsewhere/b.mp4")
    listed = list(storage.list_multipart_uploads(bucket, "jobs/", client=client))
    assert [(u.key, u.upload_id) for u in listed] == [("jobs/a/out.mp4", ours)]
    assert listed[0].initiated is not None
    # An upload already gone (aborted or completed elsewhere) counts as done.
    assert storage.abort_multipart_uploads(bucket, listed * 2, client=client) == 2
    remaining = [u.key for u in storage.list_multipart_uploads(bucket, client=client)]
    assert remaining == ["elsewhere/b.mp4"]


def test_only_uploads_older_than_the_limit_are_swept(client, buckets):
    _, bucket = buckets
    started(client, bucket, "a.mp4")
    hour = timedelta(hours=1)
    assert storage.abort_stale_multipart_uploads(bucket, hour, client=client) == 0
    later = datetime.now(UTC) + 2 * hour
    assert storage.abort_stale_multipart_uploads(bucket, hour, client=client, now=later) == 1
    assert list(storage.list_multipart_uploads(bucket, client=client)) == []


def test_the_expiry_rule_joins_the_bucket_rules_once(client, buckets):
    _, bucket = buckets
    theirs = {"ID": "theirs", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}}
    theirs["Expiration"] = {"Days": 7}
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]}
    )
    assert storage.expire_incomplete_multipart_uploads(bucket, 2, client=client) is True
    assert storage.expire_incomplete_multipart_uploads(bucket, 2, client=client) is True
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    by_id = {rule["ID"]: rule for rule in rules}
    assert set(by_id) == {"theirs", storage.ABORT_RULE_ID}  # theirs kept, ours once
    assert by_id["theirs"]["Expiration"] == {"Days": 7}
    ours = by_id[storage.ABORT_RULE_ID]
    assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
