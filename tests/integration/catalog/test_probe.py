"""Probing with the real ffprobe over presigned URLs: generated media and corrupt files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpr_catalog.adapters.ffprobe import FfprobeProber
from mpr_catalog.adapters.s3 import Presigner
from mpr_catalog.application.ports import MediaUnreachable
from mpr_catalog.bootstrap import Container, bootstrap, running
from mpr_catalog.domain.probe import UnreadableMedia
from mpr_catalog.settings import CatalogSettings
from mpr_shared import storage
from tests.integration.catalog.conftest import Assets, Collected
from tests.support.media import make_video


@pytest.fixture(scope="module")
def wide_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VP9/Opus WebM, 2 s, 160x90 at 15 fps: other values than the default clip."""
    path = tmp_path_factory.mktemp("probe") / "wide.webm"
    return make_video(
        path,
        seconds=2.0,
        size="160x90",
        rate=15,
        vcodec="libvpx-vp9",
        acodec="libopus",
        extra=("-deadline", "realtime", "-cpu-used", "8"),
    )


async def test_scan_probes_generated_media_with_the_right_values(
    catalog: Container,
    assets: Assets,
    published: Collected,
    s3_client,
    buckets,
    video_file: Path,
    audio_file: Path,
    wide_video: Path,
) -> None:
    bucket = buckets[0]
    for key, path in (
        ("v/clip.mp4", video_file),
        ("v/wide.WEBM", wide_video),
        ("a/tone.mp3", audio_file),
    ):
        s3_client.upload_file(str(path), bucket, key)
    result = await catalog.scanner.scan()
    assert result.registered == 3

    mp4 = await assets.wait("v/clip.mp4", probe_status="ok")
    video, audio = mp4.probe["streams"]
    assert (video["codec"], video["width"], video["height"]) == ("h264", 320, 240)
    assert (video["frame_rate"], video["pixel_format"]) == (25.0, "yuv420p")
    assert (audio["codec"], audio["sample_rate"], audio["channels"]) == ("aac", 48000, 1)
    assert "mp4" in mp4.probe["container"] and mp4.probe["size"] == mp4.size_bytes
    assert mp4.probe["bit_rate"] > 0
    assert mp4.duration_seconds == pytest.approx(1.0, abs=0.1)

    webm = await assets.wait("v/wide.WEBM", probe_status="ok")
    assert webm.media_type == "video"
    video, audio = webm.probe["streams"]
    assert (video["codec"], video["width"], video["height"], video["frame_rate"]) == (
        "vp9",
        160,
        90,
        15.0,
    )
    assert audio["codec"] == "opus"
    assert webm.duration_seconds == pytest.approx(2.0, abs=0.1)

    mp3 = await assets.wait("a/tone.mp3", probe_status="ok")
    assert mp3.media_type == "audio"
    [stream] = mp3.probe["streams"]
    assert (stream["codec"], stream["sample_rate"]) == ("mp3", 44100)
    assert mp3.duration_seconds == pytest.approx(1.0, abs=0.1)

    probed = await published.wait("asset.probed", 3)
    assert {e["probe_status"] for e in probed} == {"ok"}


async def test_corrupt_files_fail_cleanly_with_a_reason(
    catalog: Container, assets: Assets, s3_client, buckets, video_file: Path
) -> None:
    bucket = buckets[0]
    clip = video_file.read_bytes()
    s3_client.put_object(Bucket=bucket, Key="empty.mp4", Body=b"")
    s3_client.put_object(Bucket=bucket, Key="notes.mp4", Body=b"meeting notes, not a video\n" * 40)
    s3_client.put_object(Bucket=bucket, Key="truncated.mp4", Body=clip[:2048])
    s3_client.upload_file(str(video_file), bucket, "good.mp4")
    assert (await catalog.scanner.scan()).registered == 4

    empty = await assets.wait("empty.mp4", probe_status="failed")
    assert empty.probe_error == "object is empty (0 bytes)" and empty.probe is None
    text = await assets.wait("notes.mp4", probe_status="failed")
    assert "Invalid data found when processing input" in text.probe_error
    truncated = await assets.wait("truncated.mp4", probe_status="failed")
    assert truncated.probe_error
    for failed in (text, truncated):
        assert "X-Amz-Signature" not in failed.probe_error  # presigned URLs never leak
        assert f"s3://{bucket}/" in failed.probe_error
    await assets.wait("good.mp4", probe_status="ok")  # and the catalog carried on


async def test_prober_whitelists_protocols_and_reports_missing_objects(
    settings: CatalogSettings, s3_client, buckets
) -> None:
    bucket = buckets[0]
    client = storage.get_s3_client(settings)
    prober = FfprobeProber(Presigner(client).url, timeout=20)
    # HLS playlists disguised as .mp4, pointing at a local file or at an internal URL over an
    # allowed protocol (SSRF): ffprobe must refuse to even parse them.
    for target in ("file:///tmp/segment.ts", "http://127.0.0.1:9/segment.ts"):
        playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{target}\n#EXT-X-ENDLIST\n"
        s3_client.put_object(Bucket=bucket, Key="trick.mp4", Body=playlist.encode())
        with pytest.raises(UnreadableMedia, match="Format not on whitelist"):
            await prober.probe(bucket, "trick.mp4")
    with pytest.raises(UnreadableMedia, match="object not found"):
        await prober.probe(bucket, "missing.mp4")

    unreachable = FfprobeProber(lambda b, k: "http://127.0.0.1:9/x.mp4", timeout=10)
    with pytest.raises(MediaUnreachable, match="Connection refused"):
        await unreachable.probe(bucket, "x.mp4")


async def test_pending_probes_resume_after_a_restart(
    settings: CatalogSettings, assets: Assets, s3_client, buckets, video_file: Path
) -> None:
    bucket = buckets[0]
    s3_client.upload_file(str(video_file), bucket, "before-restart.mp4")
    async with running(bootstrap(settings)) as first:
        await first.probes.stop()  # the process dies before probing anything
        assert (await first.scanner.scan()).registered == 1
    assert (await assets.get("before-restart.mp4")).probe_status == "pending"

    async with running(bootstrap(settings)):
        asset = await assets.wait("before-restart.mp4", probe_status="ok")
    assert asset.probe["streams"][0]["codec"] == "h264"
