"""Each job kind on generated media, through RabbitMQ, S3 and FFmpeg; outputs verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpr_shared.contracts import JobCompleted, JobFailed, JobProgress, JobStarted
from tests.integration.transcoder.conftest import probe_json
from tests.support.media import make_video

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "small": make_video(root / "small.mp4", seconds=3, size="320x240"),
        "hd": make_video(root / "hd.mp4", seconds=2, size="1280x720"),
    }


def fetch(s3_client, bucket: str, key: str, tmp_path: Path) -> Path:
    local = tmp_path / ("dl-" + key.replace("/", "_"))
    s3_client.download_file(bucket, key, str(local))
    return local


def first(probe: dict, kind: str) -> dict:
    return next(s for s in probe["streams"] if s["codec_type"] == kind)


def top_level_atoms(path: Path) -> list[str]:
    atoms, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        atoms.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size < 8:
            break
        offset += size
    return atoms


async def run_job(jobs, tap, s3_client, clips, clip="small", key="in/clip.mp4", **spec):
    s3_client.upload_file(str(clips[clip]), jobs.env["S3_BUCKET_IN"], key)
    job = await jobs.submit(jobs.command(key, **spec))
    done = await tap.wait_for(job.job_id, (JobCompleted, JobFailed))
    assert isinstance(done, JobCompleted), done
    assert isinstance(tap.of(job.job_id)[0], JobStarted)
    return job, done


async def test_transcode_h264_is_web_ready_and_never_upscaled(
    replica, jobs, tap, s3_client, clips, tmp_path
):
    job, done = await run_job(jobs, tap, s3_client, clips, kind="transcode", preset="h264-480p")
    (output,) = done.outputs
    assert output.key == job.output_key and output.probe["height"] == 240
    local = fetch(s3_client, output.bucket, output.key, tmp_path)
    assert local.stat().st_size == output.size_bytes
    probe = probe_json(local)
    video = first(probe, "video")
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (320, 240)
    assert first(probe, "audio")["codec_name"] == "aac"
    assert abs(float(probe["format"]["duration"]) - 3.0) < 0.2
    atoms = top_level_atoms(local)
    assert atoms.index("moov") < atoms.index("mdat")  # +faststart
    progress = tap.of(job.job_id, JobProgress)
    assert progress and progress[-1].percent == 100.0
    assert [p.percent for p in progress] == sorted(p.percent for p in progress)


async def test_transcode_vp9_webm(replica, jobs, tap, s3_client, clips, tmp_path):
    _, done = await run_job(jobs, tap, s3_client, clips, kind="transcode", preset="vp9-720p")
    probe = probe_json(fetch(s3_client, done.outputs[0].bucket, done.outputs[0].key, tmp_path))
    assert "webm" in probe["format"]["format_name"]
    assert first(probe, "video")["codec_name"] == "vp9"
    assert first(probe, "audio")["codec_name"] == "opus"


@pytest.mark.parametrize(("mode", "low", "high"), [("copy", 1.4, 3.0), ("accurate", 1.4, 1.6)])
async def test_trim(replica, jobs, tap, s3_client, clips, tmp_path, mode, low, high):
    _, done = await run_job(jobs, tap, s3_client, clips, kind="trim", start=0.5, end=2.0, mode=mode)
    probe = probe_json(fetch(s3_client, done.outputs[0].bucket, done.outputs[0].key, tmp_path))
    assert low <= float(probe["format"]["duration"]) <= high
    assert first(probe, "video")["codec_name"] == "h264"
    assert first(probe, "audio")["codec_name"] == "aac"


@pytest.mark.parametrize(
    ("preset", "codec", "rate"), [("audio-aac", "aac", "48000"), ("audio-mp3", "mp3", "44100")]
)
async def test_audio_extraction(
    replica, jobs, tap, s3_client, clips, tmp_path, preset, codec, rate
):
    _, done = await run_job(jobs, tap, s3_client, clips, kind="audio", preset=preset)
    probe = probe_json(fetch(s3_client, done.outputs[0].bucket, done.outputs[0].key, tmp_path))
    assert [s["codec_type"] for s in probe["streams"]] == ["audio"]
    audio = first(probe, "audio")
    assert audio["codec_name"] == codec and audio["sample_rate"] == rate and audio["channels"] == 2
    assert abs(float(probe["format"]["duration"]) - 3.0) < 0.2


async def test_thumbnail_and_sprite(replica, jobs, tap, s3_client, clips, tmp_path):
    _, one = await run_job(jobs, tap, s3_client, clips, kind="thumbnail", at=1.0)
    still = first(
        probe_json(fetch(s3_client, one.outputs[0].bucket, one.outputs[0].key, tmp_path)), "video"
    )
    assert still["codec_name"] == "mjpeg" and (still["width"], still["height"]) == (320, 240)
    _, sheet = await run_job(jobs, tap, s3_client, clips, kind="thumbnail", count=6)
    tiles = first(
        probe_json(fetch(s3_client, sheet.outputs[0].bucket, sheet.outputs[0].key, tmp_path)),
        "video",
    )
    assert tiles["codec_name"] == "mjpeg"
    assert (tiles["width"], tiles["height"]) == (3 * 160, 2 * 120)  # 3x2 tiles of 160x120


async def test_hls_ladder_stops_at_the_source_height(
    replica, jobs, tap, s3_client, clips, tmp_path
):
    job, done = await run_job(jobs, tap, s3_client, clips, clip="hd", kind="hls")
    bucket = job.output_bucket
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=job.output_key)["Contents"]
    keys = {o["Key"] for o in listed}
    assert keys == {o.key for o in done.outputs}
    master = fetch(s3_client, bucket, job.output_key + "master.m3u8", tmp_path).read_text()
    playlists = [line for line in master.splitlines() if line and not line.startswith("#")]
    assert playlists == ["720p/index.m3u8", "480p/index.m3u8"]  # no 1080p rung for a 720p source
    assert "RESOLUTION=1280x720" in master and "RESOLUTION=854x480" in master
    for playlist in playlists:
        text = fetch(s3_client, bucket, job.output_key + playlist, tmp_path).read_text()
        assert "#EXT-X-ENDLIST" in text
        segments = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert segments
        rendition = playlist.split("/")[0]
        for segment in segments:
            assert f"{job.output_key}{rendition}/{segment}" in keys
        seg = fetch(s3_client, bucket, f"{job.output_key}{rendition}/{segments[0]}", tmp_path)
        height = first(probe_json(seg), "video")["height"]
        assert height == int(rendition.removesuffix("p"))
