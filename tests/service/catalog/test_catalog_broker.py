"""The catalog's subscribers on FastStream's in-memory broker, with the ports faked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from faststream.rabbit import RabbitBroker, RabbitMessage, TestRabbitBroker
from faststream.specification import AsyncAPI

from mpr_catalog.bootstrap import bootstrap
from mpr_catalog.settings import CatalogSettings
from mpr_shared.contracts import (
    AssetRegistered,
    AssetRemoved,
    RegisterObject,
    ScanBucket,
    ScanResult,
)
from mpr_shared.messaging import ERROR_HEADER, TYPE_HEADER
from mpr_shared.topology import (
    COMMANDS,
    DEAD_LETTER,
    catalog_s3_events,
    dead_letter_queue,
    s3_events_exchange,
)
from tests.unit.catalog.fakes import (
    FakeDatabase,
    FakeLister,
    FakeProber,
    FakeUnitOfWorkFactory,
)
from tests.unit.catalog.samples import BUCKET, minio_body, minio_headers


@pytest.fixture
def settings(tmp_path) -> CatalogSettings:
    database = f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"  # the fakes stand in for it
    return CatalogSettings(S3_BUCKET_IN=BUCKET, MPR_ENV="test", DATABASE_URL=database)


@pytest.fixture
def store() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def lister() -> FakeLister:
    return FakeLister({"a.mp4": (10, "ea"), "dir/b c.mkv": (20, "eb")})


@pytest.fixture
def dead_letters() -> list[RabbitMessage]:
    return []


@pytest.fixture
async def broker(
    settings: CatalogSettings, store: FakeDatabase, lister: FakeLister, dead_letters: list
) -> AsyncIterator[RabbitBroker]:
    container = bootstrap(
        settings, uow=FakeUnitOfWorkFactory(store), lister=lister, prober=FakeProber()
    )
    broker = container.broker

    async def undecoded(message: RabbitMessage) -> bytes:
        return message.body

    @broker.subscriber(
        dead_letter_queue(catalog_s3_events(settings)), DEAD_LETTER, decoder=undecoded
    )
    async def capture(message: RabbitMessage) -> None:
        dead_letters.append(message)

    async with TestRabbitBroker(broker) as test_broker:
        yield test_broker
    await container.engine.dispose()


async def test_scan_request_gets_scan_result_reply(
    broker: RabbitBroker, store: FakeDatabase
) -> None:
    command = ScanBucket(prefix="", correlation_id="req-1")
    reply = await broker.request(
        command.model_dump(mode="json"),
        exchange=COMMANDS,
        routing_key=ScanBucket.ROUTING_KEY,
        correlation_id="amqp-req-1",
    )
    result = ScanResult.model_validate(await reply.decode())
    assert reply.headers[TYPE_HEADER] == "ScanResult"  # publish_properties, like every publish
    assert reply.correlation_id == "amqp-req-1"
    assert (result.found, result.registered, result.skipped) == (2, 2, 0)
    assert sorted(result.files) == ["a.mp4", "dir/b c.mkv"]
    registered = store.messages(AssetRegistered)
    assert {m.causation_id for m in registered} == {command.id}
    assert {m.correlation_id for m in registered} == {"req-1"}

    again = ScanResult.model_validate(
        await (
            await broker.request(
                {"prefix": ""}, exchange=COMMANDS, routing_key=ScanBucket.ROUTING_KEY
            )
        ).decode()
    )
    assert (again.registered, again.skipped, again.files) == (0, 2, [])


async def test_minio_notifications_register_and_remove(
    broker: RabbitBroker, settings: CatalogSettings, store: FakeDatabase
) -> None:
    exchange = s3_events_exchange(settings)
    for event, seq in (("s3:ObjectCreated:Put", "10"), ("s3:ObjectRemoved:Delete", "11")):
        await broker.publish(
            minio_body(event, BUCKET, "new clip.mp4", sequencer=seq, size=5, etag="e"),
            exchange=exchange,
            routing_key=settings.events_routing_key,
            content_type="application/json",
            headers=minio_headers(event, BUCKET),
        )
    asset = store.by_key("new clip.mp4")
    assert asset is not None and asset.state.status == "deleted"
    assert [type(m) for m in store.outbox] == [AssetRegistered, AssetRemoved]


async def test_malformed_notification_is_dead_lettered_with_the_reason(
    broker: RabbitBroker, settings: CatalogSettings, store: FakeDatabase, dead_letters: list
) -> None:
    exchange = s3_events_exchange(settings)
    bad = json.dumps(
        {"EventName": "s3:ObjectCreated:Put", "Records": [{"eventName": "s3:ObjectCreated:Put"}]}
    )
    await broker.publish(
        bad,
        exchange=exchange,
        routing_key=settings.events_routing_key,
        content_type="application/json",
    )
    await broker.publish(
        b"{oops",
        exchange=exchange,
        routing_key=settings.events_routing_key,
        content_type="application/json",
    )
    reasons = [m.headers[ERROR_HEADER] for m in dead_letters]
    assert len(reasons) == 2
    assert "Records[0]: s3: Field required" in reasons[0]
    assert "not valid JSON" in reasons[1]
    assert store.assets == {}

    await broker.publish(  # the consumer keeps going
        minio_body("s3:ObjectCreated:Put", BUCKET, "ok.mp4", size=1, etag="e"),
        exchange=exchange,
        routing_key=settings.events_routing_key,
        content_type="application/json",
    )
    assert store.by_key("ok.mp4") is not None


async def test_register_object_registers_one_object_once(
    broker: RabbitBroker, store: FakeDatabase
) -> None:
    command = RegisterObject(
        correlation_id="upload-1",
        bucket=BUCKET,
        key="up/clip.mp4",
        size_bytes=42,
        etag="e1",
        requested_by="gateway:upload:1",
    )
    for _ in range(2):  # delivered twice: registered once
        await broker.publish(
            command.model_dump(mode="json"), exchange=COMMANDS, routing_key="catalog.register"
        )
    asset = store.by_key("up/clip.mp4")
    assert asset is not None and asset.state.size == 42
    registered = store.messages(AssetRegistered)
    assert [(m.key, m.causation_id, m.correlation_id) for m in registered] == [
        ("up/clip.mp4", command.id, "upload-1")
    ]


def test_asyncapi_documents_what_the_catalog_consumes_and_sends(settings: CatalogSettings) -> None:
    broker = bootstrap(settings).broker
    document = AsyncAPI(broker, title="catalog").to_specification().to_jsonable()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {
        "catalog.scan",
        "catalog.register",
        settings.events_routing_key,
        "asset.registered",
        "asset.probed",
        "asset.updated",
        "asset.removed",
        "job.create",
    }
