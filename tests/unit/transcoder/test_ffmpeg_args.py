"""Preset → FFmpeg arguments, HLS ladder selection and trim building (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mpr_shared.presets import get_preset
from mpr_transcoder.domain.errors import BadInput
from mpr_transcoder.domain.ffmpeg_args import (
    LOCAL_PROTOCOLS,
    SOURCE_FORMATS,
    URL_PROTOCOLS,
    Limits,
    build_plan,
    even_height,
    hls_ladder,
)
from mpr_transcoder.domain.media import MediaInfo
from tests.unit.transcoder.fakes import make_job, probe_data

WORK = Path("/work/job-1")


def plan_for(job, source=None, *, protocols=LOCAL_PROTOCOLS, limits=Limits(), target=None):
    source = source or MediaInfo.from_ffprobe(probe_data())
    return build_plan(
        job,
        job.spec.output_preset,
        source,
        target=target or str(WORK / "source.mp4"),
        protocols=protocols,
        workdir=WORK,
        limits=limits,
    )


def opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_h264_preset_is_web_ready_scaled_crf_and_codecs():
    args = plan_for(make_job(preset="h264-480p")).args
    assert args[0] == "ffmpeg"
    assert opt(args, "-movflags") == "+faststart"
    assert "scale=-2:480" in opt(args, "-filter_complex")
    assert opt(args, "-c:v") == "libx264"
    assert opt(args, "-crf") == "24"
    assert opt(args, "-preset") == "veryfast"
    assert opt(args, "-pix_fmt") == "yuv420p"
    assert opt(args, "-c:a") == "aac"
    assert opt(args, "-b:a") == "128k"
    assert opt(args, "-f") == "mp4"
    assert opt(args, "-protocol_whitelist") == "file"
    assert opt(args, "-format_whitelist") == SOURCE_FORMATS
    assert args.index("-format_whitelist") < args.index("-i")  # an input option
    assert opt(args, "-progress") == "pipe:1" and "-nostats" in args and "-nostdin" in args
    assert str(WORK / "output.mp4") in args


def test_never_upscales_past_the_source():
    source = MediaInfo.from_ffprobe(probe_data(width=320, height=240))
    plan = plan_for(make_job(preset="h264-1080p"), source)
    assert "scale=-2:240" in opt(plan.args, "-filter_complex")
    assert plan.outputs[0].expect.height == 240


def test_odd_source_height_becomes_even_and_the_limit_caps_it():
    assert even_height(241, 480) == 240
    source = MediaInfo.from_ffprobe(probe_data(height=1080, width=1920))
    plan = plan_for(make_job(preset="h264-1080p"), source, limits=Limits(max_output_height=360))
    assert "scale=-2:360" in opt(plan.args, "-filter_complex")


def test_hevc_is_tagged_hvc1_and_vp9_is_webm_constrained_quality():
    hevc = plan_for(make_job(preset="hevc-1080p")).args
    assert opt(hevc, "-c:v") == "libx265" and opt(hevc, "-tag:v") == "hvc1"
    vp9 = plan_for(make_job(preset="vp9-720p", output_key="a/j/vp9-720p.webm")).args
    assert opt(vp9, "-c:v") == "libvpx-vp9" and opt(vp9, "-c:a") == "libopus"
    assert opt(vp9, "-crf") == "33" and opt(vp9, "-b:v") == "1500k"
    assert opt(vp9, "-f") == "webm" and "-movflags" not in vp9


def test_video_without_audio_maps_no_audio():
    source = MediaInfo.from_ffprobe(probe_data(audio=None))
    args = plan_for(make_job(preset="h264-720p"), source).args
    assert "0:a:0" not in args and "-c:a" not in args


def test_unknown_or_mismatched_preset_never_reaches_the_transcoder():
    # JobSpec refuses them, so ProcessMedia cannot carry them (it is dead-lettered unparsed).
    with pytest.raises(ValidationError, match="unknown preset 'nope'"):
        make_job(preset="nope")
    with pytest.raises(ValidationError, match="unknown preset 'audio-aac'"):
        make_job(preset="audio-aac")  # an audio preset on a transcode


def test_presigned_url_input_whitelists_network_protocols():
    args = plan_for(make_job(), protocols=URL_PROTOCOLS, target="https://s3/x?sig").args
    assert opt(args, "-protocol_whitelist") == "http,https,tcp,tls"  # no local files
    assert opt(args, "-format_whitelist") == SOURCE_FORMATS  # no playlists or concat lists
    assert opt(args, "-i") == "https://s3/x?sig"


def test_copy_trim_seeks_on_input_and_copies_streams():
    plan = plan_for(make_job("trim", output_key="a/j/trim.mp4", start=2, end=5.5))
    args = plan.args
    assert opt(args, "-ss") == "2.000000" and opt(args, "-t") == "3.500000"
    assert args.index("-ss") < args.index("-i")
    assert opt(args, "-c") == "copy"
    assert opt(args, "-movflags") == "+faststart"
    assert plan.expected_seconds == pytest.approx(3.5)
    assert plan.outputs[0].expect.min_duration == pytest.approx(3.0)


def test_accurate_trim_re_encodes():
    plan = plan_for(make_job("trim", output_key="a/j/trim.mp4", start=1, end=2, mode="accurate"))
    assert opt(plan.args, "-c:v") == "libx264" and opt(plan.args, "-c:a") == "aac"
    assert "-c" not in plan.args
    assert plan.outputs[0].expect.max_duration == pytest.approx(1.5)


def test_trim_end_past_the_source_is_clamped_and_start_past_it_is_impossible():
    plan = plan_for(make_job("trim", output_key="a/j/trim.mp4", start=8, end=60))
    assert plan.expected_seconds == pytest.approx(2.0)
    with pytest.raises(BadInput, match="trim start 12s is at or past the source's end"):
        plan_for(make_job("trim", output_key="a/j/trim.mp4", start=12, end=20))


def test_copy_trim_of_an_unprobed_source_maps_streams_optionally():
    source = MediaInfo(duration=10.0, format_name=None)
    args = plan_for(make_job("trim", output_key="a/j/trim.mkv", start=1, end=2), source).args
    assert "0:v:0?" in args and "0:a:0?" in args
    assert args[-2].endswith("output.mkv") or str(WORK / "output.mkv") in args


def test_audio_extraction_uses_the_preset_format():
    plan = plan_for(make_job("audio", preset="audio-mp3", output_key="a/j/audio-mp3.mp3"))
    args = plan.args
    assert "-vn" in args and opt(args, "-c:a") == "libmp3lame" and opt(args, "-f") == "mp3"
    assert opt(args, "-ar") == "44100" and opt(args, "-ac") == "2"
    aac = plan_for(make_job("audio", output_key="a/j/audio-aac.m4a")).args
    assert opt(aac, "-f") == "ipod" and opt(aac, "-movflags") == "+faststart"
    with pytest.raises(BadInput, match="no audio stream"):
        plan_for(make_job("audio"), MediaInfo.from_ffprobe(probe_data(audio=None)))


def test_thumbnail_single_frame_and_sprite_sheet():
    one = plan_for(make_job("thumbnail", output_key="a/j/t.jpg", at=3)).args
    assert opt(one, "-ss") == "3.000000" and opt(one, "-frames:v") == "1"
    assert "scale=-2:320" in opt(one, "-filter_complex") and opt(one, "-q:v") == "3"
    sprite = plan_for(make_job("thumbnail", output_key="a/j/t.jpg", count=10))
    graph = opt(sprite.args, "-filter_complex")
    assert "fps=fps=1.000000" in graph and "tile=4x3" in graph and "scale=-2:120" in graph
    assert sprite.outputs[0].expect.height == 360
    with pytest.raises(BadInput, match="past the source's end"):
        plan_for(make_job("thumbnail", output_key="a/j/t.jpg", at=10))


@pytest.mark.parametrize(
    ("source_height", "expected"),
    [
        (1080, [1080, 720, 480]),
        (720, [720, 480]),
        (600, [480]),
        (360, [360]),  # smaller than every rung: one rendition at its own size
        (241, [240]),
    ],
)
def test_hls_ladder_drops_rungs_above_the_source(source_height, expected):
    ladder = hls_ladder(get_preset("hls-h264"), source_height, 2160)
    assert [h for _, h in ladder] == expected


def test_sizes_without_any_known_height_are_bad_input():
    with pytest.raises(BadInput, match="no height"):
        even_height(None, 0)
    with pytest.raises(BadInput, match="no height"):
        hls_ladder(get_preset("hls-h264"), 0, 2160)


def test_hls_ladder_respects_the_output_limit():
    ladder = hls_ladder(get_preset("hls-h264"), 1080, 720)
    assert [r.name for r, _ in ladder] == ["720p", "480p"]


def test_hls_plan_names_one_playlist_per_rendition_under_the_prefix():
    plan = plan_for(make_job("hls", output_key="a/j/"))
    args = plan.args
    assert opt(args, "-var_stream_map") == "v:0,a:0,name:720p v:1,a:1,name:480p"
    assert opt(args, "-master_pl_name") == "master.m3u8"
    assert opt(args, "-hls_playlist_type") == "vod" and opt(args, "-hls_time") == "6"
    assert opt(args, "-f") == "hls"
    assert "split=2" in opt(args, "-filter_complex")
    assert opt(args, "-b:v:0") == "2800k" and opt(args, "-b:v:1") == "1400k"
    assert plan.hls.prefix == "a/j/"
    with pytest.raises(BadInput, match="prefix ending in '/'"):
        plan_for(make_job("hls", output_key="a/j/master.m3u8"))


def test_non_finite_times_never_reach_ffmpeg():
    # The contract refuses them (JobSpec: numbers are finite); a finite end past the source
    # is clamped and a time past it is bad input.
    for fields in ({"at": float("nan")}, {"at": float("inf")}):
        with pytest.raises(ValueError, match="finite number"):
            make_job("thumbnail", output_key="a/j/t.jpg", **fields)
    with pytest.raises(ValueError, match="finite number"):
        make_job("trim", output_key="a/j/t.mp4", start=1, end=float("inf"))
    plan = plan_for(make_job("trim", output_key="a/j/t.mp4", start=1, end=1e9))
    assert plan.expected_seconds == pytest.approx(9.0)  # 'to the end' is clamped
    with pytest.raises(BadInput, match="past the source's end"):
        plan_for(make_job("thumbnail", output_key="a/j/t.jpg", at=1e9))


def test_keys_never_become_paths_or_filters():
    job = make_job(output_key="a/j/$(rm -rf ~);scale=9999:9999.mp4")
    args = plan_for(job).args
    assert all("rm -rf" not in a for a in args)
    with pytest.raises(ValueError, match=r"'\.\.' segments"):
        make_job(output_key="a/../../etc/x.mp4")  # the contract refuses it (S3Key)
    forged = make_job().model_copy(update={"output_key": "a/../../etc/x.mp4"})
    with pytest.raises(BadInput, match=r"\.\."):
        plan_for(forged)  # and so does the plan, should one get past it
