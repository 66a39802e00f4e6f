"""Parsing bucket notifications (MinIO and AWS formats), key decoding and sequencer order."""

from __future__ import annotations

import json

import pytest

from mpr_catalog.domain.notifications import (
    ChangeKind,
    InvalidNotification,
    decode_key,
    is_newer,
    normalize_sequencer,
    parse_notification,
)
from tests.unit.catalog.samples import AWS_TEST_EVENT, aws_body, minio_body, minio_record

BUCKET = "mpr-media-in"


def test_minio_put_becomes_a_created_change() -> None:
    body = minio_body(
        "s3:ObjectCreated:Put",
        BUCKET,
        "clips/intro.mp4",
        sequencer="17D2F4A6C0B1E3F5",
        size=1234,
        etag="9b2cf535f27731c974343645a3985328",
    )
    [change] = parse_notification(body).changes
    assert change.kind is ChangeKind.CREATED
    assert (change.bucket, change.key) == (BUCKET, "clips/intro.mp4")
    assert (change.size, change.etag) == (1234, "9b2cf535f27731c974343645a3985328")
    assert change.sequencer == "17D2F4A6C0B1E3F5".rjust(32, "0")


@pytest.mark.parametrize(
    "key",
    [
        "my video.mp4",
        "a+b.mp4",
        "100%.mp4",
        "50% off + more.mkv",
        "nested/deeper/still/clip.mov",
        "ünïcödé/日本語 クリップ 🎬.mp4",
        "odd&chars=?#~'.mp4",
        "%2F literally.mp4",
    ],
)
def test_keys_survive_minio_url_encoding(key: str) -> None:
    body = minio_body("s3:ObjectCreated:Put", BUCKET, key, size=1, etag="e")
    assert json.loads(body)["Records"][0]["s3"]["object"]["key"] != key  # really encoded
    [change] = parse_notification(body).changes
    assert change.key == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("my+video.mp4", "my video.mp4"),
        ("a%2Bb.mp4", "a+b.mp4"),
        ("100%25.mp4", "100%.mp4"),
        ("dir%2Fsub%2Fx.mp4", "dir/sub/x.mp4"),
        ("dir/sub/x.mp4", "dir/sub/x.mp4"),
        ("%C3%BCber.mp4", "über.mp4"),
    ],
)
def test_decode_key_treats_plus_as_space(raw: str, key: str) -> None:
    assert decode_key(raw) == key


def test_aws_records_without_the_s3_prefix_parse_the_same() -> None:
    body = aws_body(
        "ObjectCreated:CompleteMultipartUpload",
        BUCKET,
        "folder/my video.mp4",
        sequencer="0055AED6DCD90281E5",
        size=9,
        etag="abc-2",
    )
    [change] = parse_notification(body).changes
    assert change.kind is ChangeKind.CREATED
    assert change.key == "folder/my video.mp4"
    assert change.etag == "abc-2"
    removal = aws_body("ObjectRemoved:Delete", BUCKET, "x.mp4", sequencer="0055AED6DCD90281E6")
    assert parse_notification(removal).changes[0].kind is ChangeKind.REMOVED


def test_aws_test_event_is_recognised_and_carries_no_change() -> None:
    notification = parse_notification(AWS_TEST_EVENT)
    assert notification.test_event
    assert notification.changes == ()


@pytest.mark.parametrize(
    "event_name",
    [
        "s3:ObjectCreated:PutTagging",
        "s3:ObjectCreated:DeleteTagging",
        "s3:ObjectCreated:PutRetention",
        "s3:ObjectCreated:PutLegalHold",
        "s3:ObjectAccessed:Get",
        "s3:ObjectAccessed:Head",
        "s3:ObjectRemoved:NoOP",
        "s3:Replication:OperationCompletedReplication",
        "s3:ObjectRestore:Completed",
    ],
)
def test_non_content_events_are_ignored(event_name: str) -> None:
    notification = parse_notification(minio_body(event_name, BUCKET, "a.mp4", size=5, etag="e"))
    assert notification.changes == ()
    [ignored] = notification.ignored
    assert ignored.event_name == event_name
    assert ignored.key == "a.mp4"


@pytest.mark.parametrize(
    "event_name",
    [
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "s3:ObjectRemoved:DeleteAllVersions",
        "LifecycleExpiration:Delete",
    ],
)
def test_removals_and_delete_markers_mean_gone(event_name: str) -> None:
    body = minio_body(event_name, BUCKET, "gone.mp4")
    record = json.loads(body)["Records"][0]["s3"]["object"]
    assert "size" not in record and "eTag" not in record  # as MinIO sends removals
    [change] = parse_notification(body).changes
    assert change.kind is ChangeKind.REMOVED


def test_zero_byte_object_without_size_field_is_size_zero() -> None:
    body = minio_body(
        "s3:ObjectCreated:Put", BUCKET, "empty.mp4", etag="d41d8cd98f00b204e9800998ecf8427e"
    )
    assert "size" not in json.loads(body)["Records"][0]["s3"]["object"]
    [change] = parse_notification(body).changes
    assert change.size == 0


def _with(record_patch) -> bytes:
    record = minio_record("s3:ObjectCreated:Put", BUCKET, "a.mp4", sequencer="1A", size=3, etag="e")
    record_patch(record)
    return json.dumps({"EventName": "s3:ObjectCreated:Put", "Records": [record]}).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"EventName": "s3:ObjectCreated:Put"}', "no 'Records'"),
        (b'{"Records": {"a": 1}}', "'Records' is a JSON dict"),
        (b'{"Records": ["x"]}', "Records[0] is a JSON str"),
        (_with(lambda r: r.pop("eventName")), "Records[0].eventName"),
        (_with(lambda r: r["s3"]["object"].pop("key")), "s3.object.key"),
        (_with(lambda r: r["s3"]["object"].pop("sequencer")), "s3.object.sequencer"),
        (_with(lambda r: r["s3"]["bucket"].pop("name")), "s3.bucket.name"),
        (_with(lambda r: r.pop("s3")), "Records[0]: s3"),
        (_with(lambda r: r["s3"]["object"].update(size=-4)), "s3.object.size"),
        (_with(lambda r: r["s3"]["object"].update(size="big")), "s3.object.size"),
        (_with(lambda r: r["s3"]["object"].update(sequencer="not-hex")), "not a hexadecimal"),
    ],
)
def test_malformed_notifications_say_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidNotification) as caught:
        parse_notification(body)
    assert reason in str(caught.value)


def test_ignored_records_need_no_object_fields() -> None:
    body = json.dumps({"Records": [{"eventName": "s3:ObjectAccessed:Get"}]})
    notification = parse_notification(body)
    assert notification.changes == ()
    assert notification.ignored[0].event_name == "s3:ObjectAccessed:Get"


# ---------------------------------------------------------------------------- sequencer


def test_sequencers_compare_as_numbers_not_strings() -> None:
    assert "FF" > "100"  # plain string order would get this wrong
    assert normalize_sequencer("100") > normalize_sequencer("FF")
    assert normalize_sequencer("0055AED6DCD90281E5") == normalize_sequencer("55aed6dcd90281e5")
    assert len(normalize_sequencer("1")) == 32


def test_is_newer() -> None:
    seq = normalize_sequencer("17D2F4A6C0B1E3F5")
    assert is_newer(seq, None)
    assert not is_newer(seq, seq)
    assert not is_newer(normalize_sequencer("17D2F4A6C0B1E3F4"), seq)
    assert is_newer(normalize_sequencer("17D2F4A6C0B1E3F6"), seq)
    assert is_newer(normalize_sequencer("10000000000000000"), seq)  # longer means later


@pytest.mark.parametrize("raw", ["", "  ", "xyz", "12-34", "1" * 33])
def test_bad_sequencers_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidNotification):
        normalize_sequencer(raw)
