"""Garbage on the catalog's queues lands in their DLQs at once with the reason; the consumers
keep going, nothing is half-registered and no scan starts."""

from __future__ import annotations

import json

import aio_pika

from mpr_catalog.bootstrap import Container
from mpr_shared.messaging import ATTEMPTS_HEADER, ERROR_HEADER, ERROR_TYPE_HEADER, QUEUE_HEADER
from tests.integration.catalog.conftest import (
    Assets,
    MinioPublisher,
    dead_lettered,
    request_scan,
)
from tests.unit.catalog.samples import minio_record

DLQ = "mpr.catalog.s3-events.dlq"
SCAN_DLQ = "mpr.catalog.scan.dlq"
NOT_UTF8 = b'{"prefix": "\xff\xfe\x00"}'


async def test_malformed_messages_are_dead_lettered_and_the_consumer_carries_on(
    catalog: Container, amqp, minio: MinioPublisher, assets: Assets, buckets
) -> None:
    bucket = buckets[0]
    good = minio_record(
        "s3:ObjectCreated:Put", bucket, "half.mp4", sequencer="1A", size=1, etag="e"
    )
    missing_key = minio_record("s3:ObjectCreated:Put", bucket, "x.mp4", sequencer="1B", size=1)
    del missing_key["s3"]["object"]["key"]
    bodies = {
        "not json": b"{this is not json",
        "wrong shape": b'["Records"]',
        "no records": json.dumps({"EventName": "s3:ObjectCreated:Put", "Key": "b/k"}).encode(),
        # One good record and one bad one: the message is rejected whole.
        "half bad": json.dumps({"Records": [good, missing_key]}).encode(),
    }
    marker = f"dlq-{bucket}"
    for name, body in bodies.items():
        await minio.publish_raw(body, {"minio-bucket": bucket, "x-test": f"{marker}:{name}"})
    await minio.event("s3:ObjectCreated:Put", bucket, "after.mp4", size=1, etag="a")
    await assets.wait("after.mp4")

    dead = await dead_lettered(amqp, DLQ, marker, len(bodies))
    assert {h[QUEUE_HEADER] for h in dead.values()} == {"mpr.catalog.s3-events"}
    reasons = {name: str(headers[ERROR_HEADER]) for name, headers in dead.items()}
    assert "not valid JSON" in reasons["not json"]
    assert "expected an object" in reasons["wrong shape"]
    assert "no 'Records'" in reasons["no records"]
    assert "Records[1]: s3.object.key: Field required" in reasons["half bad"]
    assert await assets.get("half.mp4") is None  # one transaction per message
    assert [a.key for a in await assets.all()] == ["after.mp4"]


async def test_bytes_that_are_not_utf8_are_dead_lettered_at_once(
    catalog: Container, amqp, minio: MinioPublisher, assets: Assets, buckets
) -> None:
    bucket = buckets[0]
    marker = f"utf8-{bucket}"
    await minio.publish_raw(NOT_UTF8, {"x-test": f"{marker}:notification"})
    await minio.event("s3:ObjectCreated:Put", bucket, "after.mp4", size=1, etag="a")
    await assets.wait("after.mp4")  # the consumer carries on

    [headers] = (await dead_lettered(amqp, DLQ, marker, 1)).values()
    assert "not UTF-8" in str(headers[ERROR_HEADER])
    assert headers[ERROR_TYPE_HEADER] == "UnicodeDecodeError"
    assert ATTEMPTS_HEADER not in headers  # poison: never retried


async def test_garbage_scan_requests_are_dead_lettered_and_start_no_scan(
    catalog: Container, amqp, amqp_url: str, assets: Assets, s3_client, buckets
) -> None:
    bucket = buckets[0]
    s3_client.put_object(Bucket=bucket, Key="waiting.mp4", Body=b"v")
    bodies = {
        "empty object": b"{}",  # every field had a default: this was a full-bucket scan
        "unknown field": json.dumps({"prefix": "", "bucket": "other"}).encode(),
        "absolute prefix": json.dumps({"prefix": "/etc"}).encode(),
        "not an object": b'["prefix"]',
        "not json": b"scan everything",
        "not utf-8": NOT_UTF8,
    }
    marker = f"scan-{bucket}"
    channel = await amqp.channel(publisher_confirms=True)
    commands = await channel.get_exchange("mpr.commands")
    for name, body in bodies.items():
        message = aio_pika.Message(
            body, content_type="application/json", headers={"x-test": f"{marker}:{name}"}
        )
        await commands.publish(message, routing_key="catalog.scan")
    await channel.close()

    dead = await dead_lettered(amqp, SCAN_DLQ, marker, len(bodies))
    reasons = {name: str(headers[ERROR_HEADER]) for name, headers in dead.items()}
    assert "prefix: Field required" in reasons["empty object"]
    assert "bucket: Extra inputs are not permitted" in reasons["unknown field"]
    assert "prefix must not start with '/'" in reasons["absolute prefix"]
    assert "does not match its schema" in reasons["not an object"]
    assert "not valid JSON" in reasons["not json"]
    assert "not UTF-8" in reasons["not utf-8"]
    assert {h[QUEUE_HEADER] for h in dead.values()} == {"mpr.catalog.scan"}
    assert not any(ATTEMPTS_HEADER in h for h in dead.values())  # dead at once
    assert await assets.all() == []  # no garbage started a scan

    result = await request_scan(amqp_url)  # the consumer carries on
    assert result.files == ["waiting.mp4"]
