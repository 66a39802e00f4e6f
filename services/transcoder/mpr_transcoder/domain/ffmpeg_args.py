"""Turn a job and its preset into an FFmpeg command (an argument list, never a shell line).

Pure functions: no I/O. Every value that reaches a filter graph is a number we computed or
validated, or a name from the preset registry; S3 keys never become paths or filter text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import ffmpeg

from mpr_shared.contracts import JobKind, ProcessMedia, TrimMode
from mpr_shared.media import MEDIA_EXTENSIONS, extension
from mpr_shared.presets import Preset, Rendition
from mpr_transcoder.errors import BadInput
from mpr_transcoder.media import MediaInfo

# Only local files may be opened, or the presigned URL and what HTTPS needs.
# https://ffmpeg.org/ffmpeg-protocols.html#Protocol-Options (protocol_whitelist)
LOCAL_PROTOCOLS = "file"
URL_PROTOCOLS = "http,https,tcp,tls"
# The demuxers of the extensions MPR accepts (mpr_shared.media; .wmv is asf). A protocol
# whitelist alone is not enough: an HLS playlist or concat list named .mp4 would still make
# FFmpeg open the URLs inside it over the allowed protocols (SSRF). Names as `ffprobe -formats`
# prints them; a multi-name demuxer matches on any of its names.
# https://ffmpeg.org/ffmpeg-formats.html#Format-Options (format_whitelist)
SOURCE_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,asf,mpegts,mp3,aac,wav,flac,ogg"
HLS_MASTER = "master.m3u8"
HLS_PLAYLIST = "index.m3u8"
SPRITE_TILE_HEIGHT = 120  # one sprite frame; a 10x10 sheet stays 1200 px high
COPY_TRIM_SLACK_SECONDS = 10.0  # a copy cut starts at the keyframe before `start`
MP4_MUXERS = frozenset({"mp4", "ipod", "mov"})
_SUFFIX_MUXER = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".m4a": "ipod",
    ".aac": "adts",
    ".mkv": "matroska",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_output_height: int = 2160
    threads: int = 0
    duration_tolerance: float = 0.5


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a verified output looks like."""

    min_duration: float | None = None
    max_duration: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    height: int | None = None
    needs_video: bool = False
    needs_audio: bool = False


@dataclass(frozen=True, slots=True)
class PlannedOutput:
    """A file FFmpeg writes and the S3 key it goes to."""

    path: Path
    key: str
    expect: Expectation
    verify: bool = True  # HLS segments are checked through their playlists


@dataclass(frozen=True, slots=True)
class HlsLayout:
    """An HLS output: everything under ``directory`` goes under ``prefix``."""

    directory: Path
    prefix: str
    renditions: tuple[Rendition, ...]
    expect: Expectation


@dataclass(frozen=True, slots=True)
class Plan:
    """One FFmpeg run and what it must produce."""

    args: list[str]
    expected_seconds: float | None
    outputs: tuple[PlannedOutput, ...] = ()
    hls: HlsLayout | None = None
    notes: dict[str, object] = field(default_factory=dict)


def even_height(*candidates: int | None) -> int:
    """The smallest given height, rounded down to even (yuv420p needs even sizes)."""
    known = [c for c in candidates if c and c > 0]
    if not known:
        raise BadInput("the source's video stream reports no height; cannot size the output")
    height = min(known)
    return max(2, height - height % 2)


def hls_ladder(
    preset: Preset, source_height: int, max_height: int
) -> tuple[tuple[Rendition, int], ...]:
    """Rungs at or below the source (and the limit), tallest first; never empty, never up."""
    if source_height <= 0:
        raise BadInput("the source's video stream reports no height; cannot build an HLS ladder")
    ceiling = min(source_height, max_height)
    rungs = [r for r in preset.ladder if r.height <= ceiling]
    if not rungs:  # a source smaller than every rung still gets one, at its own size
        smallest = min(preset.ladder, key=lambda r: r.height)
        return ((smallest, even_height(ceiling)),)
    return tuple((r, even_height(r.height)) for r in sorted(rungs, key=lambda r: -r.height))


def _base(target: str, protocols: str, **input_options: object) -> ffmpeg.nodes.FilterableStream:
    return ffmpeg.input(
        target, protocol_whitelist=protocols, format_whitelist=SOURCE_FORMATS, **input_options
    )


def _compile(stream: ffmpeg.nodes.OutputStream, binary: str) -> list[str]:
    stream = stream.global_args(
        "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1"
    )
    return stream.compile(cmd=binary, overwrite_output=True)


def _container_options(muxer: str | None, limits: Limits) -> dict[str, object]:
    options: dict[str, object] = {}
    if muxer:
        options["f"] = muxer
    if muxer in MP4_MUXERS:
        # Move the moov atom to the front so players start before the download ends.
        # https://ffmpeg.org/ffmpeg-formats.html#Options-8 (movflags faststart)
        options["movflags"] = "+faststart"
    if limits.threads:
        options["threads"] = limits.threads
    return options


def video_options(preset: Preset) -> dict[str, object]:
    """Encoder options of a video preset (codec, CRF, speed, pixel format)."""
    options: dict[str, object] = {"c:v": preset.video_codec}
    if preset.crf is not None:
        options["crf"] = preset.crf
    if preset.video_bitrate:
        options["b:v"] = preset.video_bitrate  # with CRF: VP9 constrained quality
    if preset.encoder_preset:
        options["preset"] = preset.encoder_preset
    if preset.pixel_format:
        options["pix_fmt"] = preset.pixel_format
    if preset.video_codec == "libx265":
        options["tag:v"] = "hvc1"  # Apple players only accept hvc1-tagged HEVC in MP4
        options["x265-params"] = "log-level=error"
    if preset.video_codec == "libvpx-vp9":
        # Multithreaded rows and the 'good' deadline at speed 4: a sane VOD trade-off.
        # https://trac.ffmpeg.org/wiki/Encode/VP9
        options.update({"row-mt": 1, "deadline": "good", "cpu-used": 4})
    return options


def audio_options(preset: Preset) -> dict[str, object]:
    options: dict[str, object] = {"c:a": preset.audio_codec}
    if preset.audio_bitrate:
        options["b:a"] = preset.audio_bitrate
    if preset.audio_channels:
        options["ac"] = preset.audio_channels
    if preset.sample_rate:
        options["ar"] = preset.sample_rate
    return options


# Codecs that re-encode an accurate trim when no preset is named, by output extension.
_TRIM_VIDEO = {".webm": ("libvpx-vp9", "libopus")}
_TRIM_AUDIO = {
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".aac": "aac",
    ".ogg": "libvorbis",
    ".flac": "flac",
    ".wav": "pcm_s16le",
}


def output_suffix(job: ProcessMedia) -> str:
    """The local output file's extension: the preset's, else the output key's or source's."""
    if (preset := job.spec.output_preset) is not None:
        return preset.extension
    for key in (job.output_key, job.source_key):
        if extension(key) in MEDIA_EXTENSIONS:
            return extension(key)
    return ".mkv"


def source_extension(job: ProcessMedia) -> str:
    """A safe extension for the downloaded source (a hint only; FFmpeg probes content)."""
    suffix = extension(job.source_key)
    return suffix if suffix in MEDIA_EXTENSIONS else ".bin"


def _check_key(job: ProcessMedia) -> None:
    is_prefix = job.output_key.endswith("/")
    if job.spec.kind is JobKind.HLS and not is_prefix:
        raise BadInput("an HLS job's output_key must be a prefix ending in '/'")
    if job.spec.kind is not JobKind.HLS and (is_prefix or not job.output_key.strip()):
        raise BadInput("output_key must name an object, not a prefix")
    parts = PurePosixPath(job.output_key).parts
    if ".." in parts:
        raise BadInput("output_key must not contain '..'")


def build_plan(
    job: ProcessMedia,
    preset: Preset | None,
    source: MediaInfo,
    *,
    target: str,
    protocols: str,
    workdir: Path,
    limits: Limits,
    binary: str = "ffmpeg",
) -> Plan:
    """The FFmpeg command for ``job`` on ``source`` (read from ``target``)."""
    _check_key(job)
    duration = source.duration
    if duration is None or duration <= 0:
        raise BadInput("the source has no duration; it is not a playable media file")
    builder = {
        JobKind.TRANSCODE: _transcode,
        JobKind.TRIM: _trim,
        JobKind.AUDIO: _audio,
        JobKind.THUMBNAIL: _thumbnail,
        JobKind.HLS: _hls,
    }[job.spec.kind]
    return builder(job, preset, source, duration, target, protocols, workdir, limits, binary)


def _tolerance(limits: Limits, expected: float) -> float:
    # 2 % covers AAC priming and frame rounding on long files; the floor covers short ones.
    return max(limits.duration_tolerance, expected * 0.02)


def _transcode(job, preset, source, duration, target, protocols, workdir, limits, binary) -> Plan:
    if not source.has_video:
        raise BadInput(f"preset {preset.name!r} needs a video stream; the source has none")
    height = even_height(source.height, preset.height, limits.max_output_height)
    inp = _base(target, protocols)
    streams = [inp["v:0"].filter("scale", -2, height)]
    options = video_options(preset)
    if source.has_audio:
        streams.append(inp["a:0"])
        options.update(audio_options(preset))
    path = workdir / f"output{preset.extension}"
    options.update(_container_options(preset.container, limits))
    tol = _tolerance(limits, duration)
    expect = Expectation(
        min_duration=duration - tol,
        max_duration=duration + tol,
        video_codec=_codec_name(preset.video_codec),
        audio_codec=_codec_name(preset.audio_codec) if source.has_audio else None,
        height=height,
        needs_video=True,
        needs_audio=source.has_audio,
    )
    args = _compile(ffmpeg.output(*streams, str(path), **options), binary)
    return Plan(args, duration, (PlannedOutput(path, job.output_key, expect),))


def _trim(job, preset, source, duration, target, protocols, workdir, limits, binary) -> Plan:
    spec = job.spec
    start, end = float(spec.start), float(spec.end)
    if start >= duration:
        raise BadInput(f"trim start {start:g}s is at or past the source's end ({duration:.3f}s)")
    end = min(end, duration)
    length = end - start
    mode = spec.mode or TrimMode.COPY  # a trim has no preset (JobSpec): copy unless told
    suffix = output_suffix(job)
    path = workdir / f"output{suffix}"
    inp = _base(target, protocols, ss=f"{start:.6f}", t=f"{length:.6f}")
    streams, options = [], {}
    copy_video = source.has_video and mode is TrimMode.COPY
    if source.has_video:
        streams.append(inp["v:0"])
    if source.has_audio:
        streams.append(inp["a:0"])
    if not streams:  # only known when the source was not probed: take what exists
        streams = [inp["v:0?"], inp["a:0?"]]
    tol = _tolerance(limits, length)
    if mode is TrimMode.COPY:
        options.update({"c": "copy", "avoid_negative_ts": "make_zero"})
        expect = Expectation(
            min_duration=length - tol,
            max_duration=length + tol + COPY_TRIM_SLACK_SECONDS,
            needs_video=copy_video,
            needs_audio=source.has_audio,
        )
    else:
        options.update(_accurate_codecs(suffix, source))
        expect = Expectation(
            min_duration=length - tol,
            max_duration=length + tol,
            needs_video=source.has_video,
            needs_audio=source.has_audio,
        )
    options.update(_container_options(_SUFFIX_MUXER.get(path.suffix), limits))
    args = _compile(ffmpeg.output(*streams, str(path), **options), binary)
    notes = {"mode": str(mode), "start": start, "end": end}
    return Plan(args, length, (PlannedOutput(path, job.output_key, expect),), notes=notes)


def _accurate_codecs(suffix: str, source: MediaInfo) -> dict[str, object]:
    if not source.has_video:
        return {"c:a": _TRIM_AUDIO.get(suffix, "aac")}
    video, audio = _TRIM_VIDEO.get(suffix, ("libx264", "aac"))
    options: dict[str, object] = {"c:v": video, "pix_fmt": "yuv420p"}
    if video == "libx264":
        options.update({"crf": 18, "preset": "veryfast"})
    else:
        options.update({"crf": 32, "b:v": 0, "row-mt": 1, "deadline": "good", "cpu-used": 4})
    if source.has_audio:
        options["c:a"] = audio
    return options


def _audio(job, preset, source, duration, target, protocols, workdir, limits, binary) -> Plan:
    if not source.has_audio:
        raise BadInput("the source has no audio stream to extract")
    path = workdir / f"output{preset.extension}"
    options = {**audio_options(preset), **_container_options(preset.container, limits)}
    tol = _tolerance(limits, duration)
    expect = Expectation(
        min_duration=duration - tol,
        max_duration=duration + tol,
        audio_codec=_codec_name(preset.audio_codec),
        needs_audio=True,
    )
    inp = _base(target, protocols)
    args = _compile(ffmpeg.output(inp["a:0"], str(path), vn=None, **options), binary)
    return Plan(args, duration, (PlannedOutput(path, job.output_key, expect),))


def _thumbnail(job, preset, source, duration, target, protocols, workdir, limits, binary) -> Plan:
    if not source.has_video:
        raise BadInput("a thumbnail needs a video stream; the source has none")
    spec = job.spec
    path = workdir / f"output{preset.extension}"
    options: dict[str, object] = {"frames:v": 1, "f": preset.container, "update": 1}
    if preset.quality is not None:
        options["q:v"] = preset.quality
    if preset.pixel_format:
        options["pix_fmt"] = preset.pixel_format
    if spec.count:
        count = int(spec.count)
        cols = math.ceil(math.sqrt(count))
        rows = math.ceil(count / cols)
        height = even_height(source.height, SPRITE_TILE_HEIGHT, limits.max_output_height)
        video = (
            _base(target, protocols)["v:0"]
            .filter("fps", fps=f"{count / duration:.6f}")
            .filter("scale", -2, height)
            .filter("tile", f"{cols}x{rows}")
        )
        expected = duration
        expect = Expectation(video_codec="mjpeg", height=height * rows, needs_video=True)
        notes = {"tiles": f"{cols}x{rows}", "count": count}
    else:
        at = float(spec.at) if spec.at is not None else round(duration * 0.1, 3)
        if at >= duration:
            raise BadInput(
                f"thumbnail time {at:g}s is at or past the source's end ({duration:.3f}s)"
            )
        height = even_height(source.height, preset.height, limits.max_output_height)
        video = _base(target, protocols, ss=f"{at:.6f}")["v:0"].filter("scale", -2, height)
        expected = None
        expect = Expectation(video_codec="mjpeg", height=height, needs_video=True)
        notes = {"at": at}
    if limits.threads:
        options["threads"] = limits.threads
    args = _compile(ffmpeg.output(video, str(path), **options), binary)
    return Plan(args, expected, (PlannedOutput(path, job.output_key, expect),), notes=notes)


def _hls(job, preset, source, duration, target, protocols, workdir, limits, binary) -> Plan:
    if not source.has_video:
        raise BadInput("HLS needs a video stream; the source has none")
    ladder = hls_ladder(preset, source.height or 0, limits.max_output_height)
    directory = workdir / "hls"
    inp = _base(target, protocols)
    split = inp["v:0"].filter_multi_output("split", len(ladder))
    streams: list = []
    options: dict[str, object] = {
        "c:v": preset.video_codec,
        "preset": preset.encoder_preset or "veryfast",
        "pix_fmt": preset.pixel_format or "yuv420p",
        # Keyframes on segment boundaries in every rendition, so players can switch rungs.
        # https://ffmpeg.org/ffmpeg-formats.html#hls-2
        "force_key_frames": f"expr:gte(t,n_forced*{int(preset.segment_seconds or 6)})",
        "sc_threshold": 0,
    }
    stream_map = []
    for i, (rung, height) in enumerate(ladder):
        streams.append(split[i].filter("scale", -2, height))
        options.update(
            {
                f"b:v:{i}": rung.video_bitrate,
                f"maxrate:v:{i}": rung.max_rate,
                f"bufsize:v:{i}": rung.buffer_size,
            }
        )
        entry = f"v:{i}"
        if source.has_audio:
            streams.append(inp["a:0"])
            options[f"b:a:{i}"] = rung.audio_bitrate
            entry += f",a:{i}"
        stream_map.append(f"{entry},name:{rung.name}")
    if source.has_audio:
        options["c:a"] = preset.audio_codec
    options.update(
        {
            "f": "hls",
            "hls_time": int(preset.segment_seconds or 6),
            "hls_playlist_type": "vod",
            "hls_segment_filename": str(directory / "%v" / "segment_%05d.ts"),
            "master_pl_name": HLS_MASTER,
            "var_stream_map": " ".join(stream_map),
        }
    )
    if limits.threads:
        options["threads"] = limits.threads
    playlist = str(directory / "%v" / HLS_PLAYLIST)
    args = _compile(ffmpeg.output(*streams, playlist, **options), binary)
    tol = _tolerance(limits, duration)
    expect = Expectation(
        min_duration=duration - tol,
        max_duration=duration + tol,
        video_codec="h264",
        audio_codec="aac" if source.has_audio else None,
        needs_video=True,
        needs_audio=source.has_audio,
    )
    layout = HlsLayout(directory, job.output_key, tuple(r for r, _ in ladder), expect)
    notes = {"renditions": [f"{r.name}@{h}" for r, h in ladder]}
    return Plan(args, duration, hls=layout, notes=notes)


def _codec_name(encoder: str | None) -> str | None:
    """The codec ffprobe reports for an encoder."""
    return {
        "libx264": "h264",
        "libx265": "hevc",
        "libvpx-vp9": "vp9",
        "libopus": "opus",
        "libmp3lame": "mp3",
        "aac": "aac",
        "mjpeg": "mjpeg",
    }.get(encoder or "", encoder)
