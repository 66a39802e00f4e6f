"""S3 faults leave no garbage: an upload cut by an outage leaves no multipart upload open once
the job completes, and old incomplete uploads are swept from the output bucket."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mpr_shared import storage
from mpr_shared.contracts import JobCompleted, JobFailed
from mpr_transcoder.adapters.s3 import S3Storage
from tests.integration.transcoder.conftest import probe_json, running_replica
from tests.integration.transcoder.proxy import CuttableProxy
from tests.support.media import make_video

pytestmark = pytest.mark.timeout(300)
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory) -> Path:
    # ~35 MB of lossless H.264: a copy trim of it uploads in three 16 MiB parts.
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    return make_video(path, seconds=20, size="1280x720", audio=False, extra=("-crf", "0"))


def open_uploads(s3_client, bucket: str) -> list[str]:
    return [u.key for u in storage.list_multipart_uploads(bucket, client=s3_client)]


class Records(logging.Handler):
    """Log records of the replica's S3 adapter, as they come."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def s3_log():
    records = Records()
    logger = logging.getLogger("mpr_transcoder.adapters.s3")
    logger.addHandler(records)
    yield records
    logger.removeHandler(records)


async def eventually(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_an_s3_outage_during_a_multipart_upload_leaves_no_upload_open(
    transcoder_env, client_broker, jobs, tap, s3_client, big_clip, s3_log, tmp_path
):
    bucket_in, bucket_out = transcoder_env["S3_BUCKET_IN"], transcoder_env["S3_BUCKET_OUT"]
    s3_client.upload_file(str(big_clip), bucket_in, "in/big.mp4")
    real = urlsplit(transcoder_env["S3_ENDPOINT_URL"])
    proxy = CuttableProxy((real.hostname or "127.0.0.1", real.port or 80))
    await proxy.start()
    env = {**transcoder_env, "S3_ENDPOINT_URL": proxy.url, "RETRY_BACKOFF_SECONDS": "0.1"}
    try:
        async with running_replica(env):
            proxy.cut_after(20 * MiB)  # the download only sends requests: this is the upload
            job = await jobs.submit(jobs.command("in/big.mp4", kind="trim", start=0, end=20))
            await asyncio.wait_for(proxy.cut.wait(), 120)
            assert open_uploads(s3_client, bucket_out) == [job.output_key]  # left by the cut
            failed = f"S3 upload of s3://{bucket_out}/{job.output_key} failed"
            await eventually(lambda: any(failed in m for m in s3_log.messages), 120)
            await proxy.restore()
            done = await tap.wait_for(job.job_id, (JobCompleted, JobFailed), timeout=180)
    finally:
        await proxy.stop()
    assert isinstance(done, JobCompleted), done
    assert open_uploads(s3_client, bucket_out) == []
    local = tmp_path / "out.mp4"
    s3_client.download_file(bucket_out, job.output_key, str(local))
    assert local.stat().st_size == done.outputs[0].size_bytes > 32 * MiB
    assert abs(float(probe_json(local)["format"]["duration"]) - 20.0) < 0.5


async def test_a_multipart_upload_clears_what_an_earlier_delivery_left_open(
    s3_client, buckets, tmp_path
):
    # An outage longer than a delivery's retries: that delivery's abort failed as well, and
    # the next delivery's upload went through at once (bench/faults.py, scenario s3).
    _, bucket_out = buckets
    s3_client.create_multipart_upload(Bucket=bucket_out, Key="a/job/trim.mp4")
    s3_client.create_multipart_upload(Bucket=bucket_out, Key="b/job/trim.mp4")
    output = tmp_path / "trim.mp4"
    output.write_bytes(b"\0" * 17 * MiB)
    assert await S3Storage(s3_client).upload(output, bucket_out, "a/job/trim.mp4") == 17 * MiB
    assert open_uploads(s3_client, bucket_out) == ["b/job/trim.mp4"]  # another job's: kept
    head = s3_client.head_object(Bucket=bucket_out, Key="a/job/trim.mp4")
    assert head["ContentLength"] == 17 * MiB


async def test_old_incomplete_uploads_are_swept_and_new_ones_kept(
    transcoder_env, client_broker, s3_client
):
    bucket_out = transcoder_env["S3_BUCKET_OUT"]
    s3_client.create_multipart_upload(Bucket=bucket_out, Key="abandoned/old.mp4")
    await asyncio.sleep(6)
    s3_client.create_multipart_upload(Bucket=bucket_out, Key="uploading/new.mp4")
    env = {**transcoder_env, "MULTIPART_UPLOAD_TTL_SECONDS": "5"}
    async with running_replica(env):
        await eventually(lambda: "abandoned/old.mp4" not in open_uploads(s3_client, bucket_out), 4)
        assert open_uploads(s3_client, bucket_out) == ["uploading/new.mp4"]
    # Where the server keeps lifecycle rules, the rule is set as well (a day: the least it has).
    rules = s3_client.get_bucket_lifecycle_configuration(Bucket=bucket_out)["Rules"]
    (rule,) = [r for r in rules if r["ID"] == storage.ABORT_RULE_ID]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
