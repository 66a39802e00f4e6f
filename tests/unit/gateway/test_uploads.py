"""Upload planning and use cases with the ports faked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from mpr_gateway.adapters.uploads import S3Uploads
from mpr_gateway.application.ports import StoredObject
from mpr_gateway.application.uploads import NewUpload, UploadLimits, UploadService
from mpr_gateway.domain.errors import Conflict, InvalidRequest, TooLarge, Unavailable
from mpr_gateway.domain.uploads import MAX_PARTS, MiB, UploadMode, plan_parts, upload_key
from mpr_shared.contracts import RegisterObject
from mpr_shared.settings import CommonSettings
from tests.unit.gateway.fakes import FakeStore, FakeUnitOfWork, FakeUploadStorage, asset

LIMITS = UploadLimits(
    max_bytes=100 * 1024**3,
    multipart_threshold=16 * MiB,
    part_size=8 * MiB,
    ttl_seconds=3600,
    register_wait_seconds=0,
)
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def s3() -> FakeUploadStorage:
    return FakeUploadStorage()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uploads(store: FakeStore, s3: FakeUploadStorage, clock: Clock) -> UploadService:
    return UploadService(
        uow=lambda: FakeUnitOfWork(store), storage=s3, bucket="in", limits=LIMITS, clock=clock
    )


@pytest.mark.parametrize(
    ("size", "mode", "part_size", "count"),
    [
        (1, UploadMode.SINGLE, None, 1),
        (64 * MiB, UploadMode.SINGLE, None, 1),
        (64 * MiB + 1, UploadMode.MULTIPART, 8 * MiB, 9),
        (80 * 1024**3, UploadMode.MULTIPART, 9 * MiB, 9103),  # grows past 8 MiB
        (5 * 1024**4, UploadMode.MULTIPART, 525 * MiB, 9987),
    ],
)
def test_parts_are_at_least_the_part_size_and_never_more_than_10000(
    size: int, mode: UploadMode, part_size: int | None, count: int
):
    plan = plan_parts(size, 64 * MiB, 8 * MiB)
    assert (plan.mode, plan.part_size, plan.count) == (mode, part_size, count)
    assert plan.count <= MAX_PARTS


def test_the_key_defaults_to_the_filename_and_is_checked_like_a_job_key():
    assert upload_key(None, "C:\\Users\\me\\clip.MP4") == "clip.MP4"
    assert upload_key("dir/a.flac", "ignored.txt") == "dir/a.flac"
    with pytest.raises(InvalidRequest, match="U\\+200B ZERO WIDTH SPACE"):
        upload_key("a\u200bb.mp4", None)
    with pytest.raises(InvalidRequest, match=r"'\.\.' segments"):
        upload_key("a/../b.mp4", None)
    with pytest.raises(InvalidRequest, match=r"supported media extension \(found '\.exe'\)") as err:
        upload_key(None, "setup.exe")
    assert ".mp4" in err.value.details["supported"]


async def test_a_small_file_gets_one_put_url_and_completing_registers_it(
    uploads: UploadService, store: FakeStore, s3: FakeUploadStorage
):
    view = await uploads.start(NewUpload(size=10, filename="a.mp4"), client="tester")
    assert view.url and "a.mp4?put&size=10&" in view.url and not view.parts
    assert view.upload.expires_at == NOW + timedelta(hours=1)
    with pytest.raises(Conflict, match="PUT the file"):
        await uploads.complete(view.upload.id)

    s3.objects[("in", "a.mp4")] = StoredObject(9, "e9")
    with pytest.raises(InvalidRequest, match="holds 9 bytes but the upload declared 10"):
        await uploads.complete(view.upload.id)
    s3.objects[("in", "a.mp4")] = StoredObject(10, "e10")
    a = asset("a.mp4", etag="e10", bucket="in")
    store.assets[a.id] = a
    done = await uploads.complete(view.upload.id)

    assert done.upload.status == "completed" and done.asset_id == a.id
    [command] = store.messages(RegisterObject)
    assert isinstance(command, RegisterObject)
    assert (command.key, command.size_bytes, command.etag) == ("a.mp4", 10, "e10")
    assert command.correlation_id == str(view.upload.id)
    again = await uploads.complete(view.upload.id)  # twice: nothing new
    assert again.asset_id == a.id and len(store.messages(RegisterObject)) == 1


async def test_an_existing_key_needs_overwrite_and_size_has_a_limit(
    uploads: UploadService, s3: FakeUploadStorage
):
    s3.objects[("in", "a.mp4")] = StoredObject(1, "e")
    with pytest.raises(Conflict, match="overwrite"):
        await uploads.start(NewUpload(size=10, key="a.mp4"))
    assert (await uploads.start(NewUpload(size=10, key="a.mp4", overwrite=True))).url
    with pytest.raises(TooLarge, match="MAX_UPLOAD_BYTES"):
        await uploads.start(NewUpload(size=LIMITS.max_bytes + 1, key="b.mp4"))


async def test_multipart_completion_lists_the_parts_itself(
    uploads: UploadService, store: FakeStore, s3: FakeUploadStorage
):
    size = 20 * MiB + 5
    view = await uploads.start(NewUpload(size=size, key="big.mkv", content_type="video/x-matroska"))
    upload = view.upload
    assert [n for n, _ in view.parts] == [1, 2, 3] and upload.multipart_id
    s3.send_part(upload.multipart_id, 1, 8 * MiB)
    s3.send_part(upload.multipart_id, 3, 4 * MiB + 5)
    with pytest.raises(Conflict, match=r"1 of 3 parts are missing \(first: part 2\)") as missing:
        await uploads.complete(upload.id)
    assert missing.value.details == {"missing": [2]}

    retry = await uploads.part_urls(upload.id, [2, 3])
    assert [url.split("&", 1)[1] for _, url in retry.parts] == [
        f"partNumber=2&size={8 * MiB}",
        f"partNumber=3&size={4 * MiB + 5}",  # the last part: the rest
    ]
    with pytest.raises(InvalidRequest, match="no part 4"):
        await uploads.part_urls(upload.id, [4])
    s3.send_part(upload.multipart_id, 2, 3 * MiB)  # cut short
    with pytest.raises(InvalidRequest, match=f"part 2 holds {3 * MiB} bytes, not {8 * MiB}"):
        await uploads.complete(upload.id)
    s3.send_part(upload.multipart_id, 2, 8 * MiB)  # sent again: listed twice, as SeaweedFS does
    with pytest.raises(Conflict, match="part 2 in S3 is not the one you sent"):
        await uploads.complete(upload.id, [(2, "stale")])
    done = await uploads.complete(upload.id, [(2, f'"etag-2-{8 * MiB}"')])

    assert done.upload.status == "completed" and done.asset_id is None  # not registered yet
    assert s3.objects[("in", "big.mkv")].size == size
    assert [m.correlation_id for m in store.messages(RegisterObject)] == [str(upload.id)]


async def test_abort_and_the_sweep_stop_pending_uploads_only(
    uploads: UploadService, s3: FakeUploadStorage, clock: Clock
):
    old = (await uploads.start(NewUpload(size=100 * MiB, key="old.mp4"))).upload
    clock.now += timedelta(minutes=30)
    young = (await uploads.start(NewUpload(size=100 * MiB, key="young.mp4"))).upload
    aborted = (await uploads.start(NewUpload(size=100 * MiB, key="gone.mp4"))).upload
    await uploads.abort(aborted.id)
    await uploads.abort(aborted.id)  # twice is fine
    with pytest.raises(Conflict, match="is aborted"):
        await uploads.complete(aborted.id)

    clock.now = NOW + timedelta(hours=1, seconds=1)
    assert await uploads.sweep() == 1

    assert s3.aborted == [aborted.multipart_id, old.multipart_id]
    assert (await uploads.get(old.id)).upload.status == "expired"
    assert (await uploads.get(young.id)).upload.status == "pending"
    assert s3.stale == [clock.now]  # and the bucket's orphans older than the TTL


async def test_s3_failing_is_a_503_and_a_missing_object_is_none():
    s3 = S3Uploads(CommonSettings(_env_file=None, S3_ENDPOINT_URL="http://s3.test"))
    with Stubber(s3._client) as stub:
        stub.add_client_error("head_object", "404", http_status_code=404)
        stub.add_client_error("head_object", "SlowDown", http_status_code=503)
        assert await s3.head("in", "a.mp4") is None
        with pytest.raises(Unavailable, match=r"S3 server failed the request \(SlowDown\)"):
            await s3.head("in", "a.mp4")
