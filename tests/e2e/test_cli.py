"""The mpr CLI against the whole running system (issue 11's CLI acceptance): a 50 MB upload in
parts, a job followed live to its outputs, the download ffprobe reads, a failing job's exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mpr_cli.app import app
from tests.e2e.conftest import API_KEY
from tests.support.env import clean_environ
from tests.support.media import ffprobe, make_video, stream

MIB = 1024 * 1024
MPR = Path(sys.executable).with_name("mpr")  # the console script `make install` puts in the venv


@pytest.fixture
def stack_env() -> dict[str, str]:
    # Parts of 8 MiB from 8 MiB on, so the 50 MB file goes up in 7 parts (the defaults: 64 MiB).
    return {
        "UPLOAD_MULTIPART_THRESHOLD_BYTES": str(8 * MIB),
        "UPLOAD_PART_SIZE_BYTES": str(8 * MIB),
    }


def test_cli_upload_job_download_and_failure(stack, api, s3_client, buckets, tmp_path: Path):
    bucket_in, _ = buckets
    settings = {
        "MPR_URL": stack.gateway_url,
        "MPR_API_KEY": API_KEY,
        "MPR_EVENTS_URL": stack.notifier_url,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "NO_COLOR": "1",
    }

    def mpr(*args: str) -> subprocess.CompletedProcess[str]:
        """The installed console script, as a user runs it."""
        env = clean_environ(**settings)
        return subprocess.run(
            [str(MPR), *args], env=env, capture_output=True, text=True, timeout=120
        )

    def mpr_here(*args: str) -> Result:
        """The same commands in this process (no interpreter start-up), on the real stack."""
        return CliRunner().invoke(app, list(args), env=settings)

    # A job that fails, queued first so that it runs while the upload goes on.
    s3_client.put_object(Bucket=bucket_in, Key="broken.mp4", Body=b"\x00not a video" * 4096)
    queued = mpr_here("jobs", "submit", "broken.mp4", "--preset", "h264-480p")
    assert queued.exit_code == 0, queued.stderr
    broken_id = queued.stdout.strip()

    # ~52 MB of real media made in a second: 6 s of 640x360 raw video and PCM audio.
    clip = make_video(
        tmp_path / "big.mkv", seconds=6, size="640x360", vcodec="rawvideo", acodec="pcm_s16le"
    )
    assert clip.stat().st_size >= 50 * 1000 * 1000

    uploaded = mpr("upload", str(clip), "media/big clip.mkv", "--watch", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    asset = json.loads(uploaded.stdout)
    assert asset["key"] == "media/big clip.mkv" and asset["probe_status"] == "ok"
    assert asset["size_bytes"] == clip.stat().st_size
    assert abs(asset["duration_seconds"] - 6.0) < 0.2
    etag = s3_client.head_object(Bucket=bucket_in, Key="media/big clip.mkv")["ETag"]
    assert etag.strip('"').endswith("-7")  # S3's ETag of a 7-part multipart upload

    done = mpr(
        "jobs",
        "submit",
        asset["id"],
        "--kind",
        "transcode",
        "--preset",
        "h264-480p",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "completed" and job["asset_id"] == asset["id"]
    [out] = job["outputs"]
    again = api.get(f"/api/jobs/{job['id']}").json()
    for body in (job, again):
        for output in body["outputs"]:
            output.pop("download_url")  # signed anew on every read
    assert job == again  # exactly the REST job object
    assert "polling" not in done.stderr  # followed over SSE

    fetched = mpr_here("download", job["id"], "-o", str(tmp_path / "out"), "--json")
    assert fetched.exit_code == 0, fetched.stderr
    [written] = json.loads(fetched.stdout)
    probe = ffprobe(written["path"])
    assert written["size_bytes"] == out["size_bytes"] == Path(written["path"]).stat().st_size
    assert stream(probe, "video")["codec_name"] == "h264"
    assert stream(probe, "video")["height"] == 360  # never upscaled past the source
    assert stream(probe, "audio")["codec_name"] == "aac"
    assert abs(float(probe["format"]["duration"]) - 6.0) < 0.3

    failed = mpr_here("jobs", "watch", broken_id, "--json")
    assert failed.exit_code == 1, failed.stderr
    assert json.loads(failed.stdout)["status"] == "failed"
    assert f"job {broken_id} failed" in failed.stderr
