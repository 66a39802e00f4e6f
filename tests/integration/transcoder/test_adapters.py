"""The transcoder's S3 and probe adapters on their own, against the real S3 server and FFmpeg:
one request each way below the multipart threshold, and in-process probes that read what
ffprobe reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mpr_shared import storage
from mpr_transcoder.adapters.ffmpeg import SubprocessRunner, _probe_in_process
from mpr_transcoder.adapters.s3 import S3Storage
from mpr_transcoder.application.ports import FFprobeFailed, SourceMissing, SourceTooLarge
from mpr_transcoder.domain.ffmpeg_args import LOCAL_PROTOCOLS, SOURCE_FORMATS
from mpr_transcoder.domain.media import MediaInfo
from tests.support.media import ffprobe, make_video

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    clip = make_video(root / "clip.mp4", seconds=1, size="160x90")
    still, hls = root / "still.jpg", root / "hls"
    hls.mkdir()
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip)]
    subprocess.run([*ffmpeg, "-frames:v", "1", "-update", "1", str(still)], check=True)
    subprocess.run(
        [*ffmpeg, "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
         "-hls_segment_filename", str(hls / "segment_%05d.ts"), str(hls / "index.m3u8")],
        check=True,
    )  # fmt: skip
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 512)
    return {"clip": clip, "still": still, "playlist": hls / "index.m3u8", "broken": broken}


@pytest.mark.parametrize("name", ["clip", "still", "playlist"])
def test_the_in_process_probe_reads_what_ffprobe_reads(media, name):
    path = media[name]
    mine = MediaInfo.from_ffprobe(_probe_in_process(str(path), LOCAL_PROTOCOLS, None))
    theirs = MediaInfo.from_ffprobe(ffprobe(path))
    assert mine.summary().keys() == theirs.summary().keys()
    for key in ("format", "video_codec", "width", "height", "audio_codec"):
        assert mine.summary().get(key) == theirs.summary().get(key), key
    if theirs.duration is not None and name != "still":
        assert mine.duration == pytest.approx(theirs.duration, abs=0.05)


async def test_a_file_the_probe_cannot_read_fails_with_ffmpegs_own_lines(media):
    runner = SubprocessRunner()
    target = str(media["broken"])
    with pytest.raises(FFprobeFailed) as failed:
        await runner.probe(target, protocols=LOCAL_PROTOCOLS, formats=SOURCE_FORMATS)
    assert f"{target}: Invalid data found when processing input" in failed.value.error_lines
    info = MediaInfo.from_ffprobe(
        await runner.probe(str(media["clip"]), protocols=LOCAL_PROTOCOLS, formats=SOURCE_FORMATS)
    )
    assert (info.video_codec, info.height, info.audio_codec) == ("h264", 90, "aac")


class Calls(list):
    """The S3 operations a client sent, by name."""

    def __call__(self, model, **_) -> None:
        self.append(model.name)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def adapter(common_settings, buckets, calls) -> S3Storage:
    client = storage.get_s3_client(common_settings)
    client.meta.events.register("before-call.s3", calls)
    yield S3Storage(client, attempts=1)
    client.meta.events.unregister("before-call.s3", calls)


async def test_a_small_source_is_one_get_checked_against_the_limit_before_writing(
    adapter, calls, s3_client, buckets, media, tmp_path
):
    bucket_in, _ = buckets
    data = media["clip"].read_bytes()
    s3_client.put_object(Bucket=bucket_in, Key="in/clip.mp4", Body=data)
    dest = tmp_path / "source.mp4"
    assert await adapter.download(bucket_in, "in/clip.mp4", dest, max_bytes=len(data)) == len(data)
    assert dest.read_bytes() == data
    assert calls == ["GetObject"]
    dest.unlink()
    with pytest.raises(SourceTooLarge) as too_large:
        await adapter.download(bucket_in, "in/clip.mp4", dest, max_bytes=len(data) - 1)
    assert too_large.value.size == len(data) and not dest.exists()
    with pytest.raises(SourceMissing):
        await adapter.download(bucket_in, "in/none.mp4", dest, max_bytes=len(data))


async def test_a_small_output_is_one_put_with_its_content_type(
    adapter, calls, s3_client, buckets, media
):
    _, bucket_out = buckets
    size = await adapter.upload(media["clip"], bucket_out, "out/clip.mp4")
    head = s3_client.head_object(Bucket=bucket_out, Key="out/clip.mp4")
    assert size == head["ContentLength"] == media["clip"].stat().st_size
    assert head["ContentType"] == "video/mp4"
    assert calls == ["PutObject"]
    await adapter.upload(media["playlist"], bucket_out, "out/index.m3u8")
    head = s3_client.head_object(Bucket=bucket_out, Key="out/index.m3u8")
    assert head["ContentType"] == "application/vnd.apple.mpegurl"
    assert calls == ["PutObject", "PutObject"]
