"""Bucket notifications exactly as MinIO's AMQP target and AWS S3 send them.

MinIO (internal/event/target/amqp.go, cmd/event-notification.go): the body is
``{"EventName", "Key": "<bucket>/<unescaped key>", "Records": [<one S3 event>]}``; the record's
object key is Go's url.QueryEscape of the key ('+' for space, '/' as %2F); size, eTag and
contentType are left out for removals and, being ``omitempty``, when zero or empty; the
sequencer is the object's ModTime in nanoseconds as upper-case hex. Published with
content-type application/json and headers minio-bucket / minio-event.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import quote_plus

BUCKET = "mpr-media-in"
_counter = itertools.count(1)


def next_sequencer() -> str:
    """A MinIO-style sequencer that increases with every call."""
    return f"{time.time_ns() + next(_counter):X}"


def minio_record(
    event_name: str,
    bucket: str,
    key: str,
    *,
    sequencer: str,
    size: int = 0,
    etag: str = "",
) -> dict[str, Any]:
    removed = event_name.startswith("s3:ObjectRemoved:")
    obj: dict[str, Any] = {"key": quote_plus(key, safe=""), "sequencer": sequencer}
    if not removed:
        if size:
            obj["size"] = size
        if etag:
            obj["eTag"] = etag
        obj["contentType"] = "video/mp4"
        obj["userMetadata"] = {"content-type": "video/mp4"}
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "eventName": event_name,
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {
            "principalId": "minioadmin",
            "region": "",
            "sourceIPAddress": "127.0.0.1",
        },
        "responseElements": {
            "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8",
            "x-amz-request-id": "17D2F4A6C0B1E3F5",
            "x-minio-deployment-id": "7c4d5a1e-2b8f-4a52-9a7e-0f4c1d2e3b4a",
            "x-minio-origin-endpoint": "http://127.0.0.1:9000",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "minioadmin"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
        "source": {
            "host": "127.0.0.1",
            "port": "",
            "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70 mc/RELEASE.2024-06-12T14-34-03Z",
        },
    }


def minio_body(
    event_name: str,
    bucket: str,
    key: str,
    *,
    sequencer: str | None = None,
    size: int = 0,
    etag: str = "",
) -> bytes:
    record = minio_record(
        event_name, bucket, key, sequencer=sequencer or next_sequencer(), size=size, etag=etag
    )
    return json.dumps(
        {"EventName": event_name, "Key": f"{bucket}/{key}", "Records": [record]}
    ).encode()


def minio_headers(event_name: str, bucket: str) -> dict[str, str]:
    return {"minio-bucket": bucket, "minio-event": event_name}


def aws_body(
    event_name: str, bucket: str, key: str, *, sequencer: str, size: int = 0, etag: str = ""
) -> bytes:
    """An AWS S3 notification (as delivered to SQS/SNS/Lambda): no 's3:' prefix on names."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": sequencer}
    if event_name.startswith("ObjectCreated:"):
        obj |= {"size": size, "eTag": etag, "versionId": "null"}
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-25T03:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "mpr-ingest",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }
    return json.dumps({"Records": [record]}).encode()


AWS_TEST_EVENT = json.dumps(
    {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-25T03:00:00.000Z",
        "Bucket": "mpr-media-in",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
).encode()
