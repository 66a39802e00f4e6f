"""Malformed notifications land in mpr.catalog.s3-events.dlq with the reason; the consumer
keeps going and nothing is half-registered."""

from __future__ import annotations

import json

from mpr_catalog.bootstrap import Container
from mpr_shared.messaging import ERROR_HEADER, QUEUE_HEADER
from tests.integration.catalog.conftest import Assets, MinioPublisher, wait_for
from tests.unit.catalog.samples import minio_record

DLQ = "mpr.catalog.s3-events.dlq"


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

    channel = await amqp.channel()
    queue = await channel.declare_queue(DLQ, durable=True, passive=True)
    reasons: dict[str, str] = {}

    async def drain() -> bool:
        others = []
        while message := await queue.get(no_ack=False, fail=False):
            tag = str(message.headers.get("x-test", ""))
            if tag.startswith(marker):  # the vhost, so the DLQ, is shared by the session
                assert message.headers[QUEUE_HEADER] == "mpr.catalog.s3-events"
                reasons[tag.split(":", 1)[1]] = str(message.headers[ERROR_HEADER])
                await message.ack()
            else:
                others.append(message)
        for message in others:
            await message.nack(requeue=True)
        return len(reasons) == len(bodies)

    await wait_for(drain)
    await channel.close()
    assert "not valid JSON" in reasons["not json"]
    assert "expected an object" in reasons["wrong shape"]
    assert "no 'Records'" in reasons["no records"]
    assert "Records[1]: s3.object.key: Field required" in reasons["half bad"]
    assert await assets.get("half.mp4") is None  # one transaction per message
    assert [a.key for a in await assets.all()] == ["after.mp4"]
