"""Turn a job and its preset into an FFmpeg command (an argument list, never a shell line).

Pure functions: no I/O. Every value that reaches a filter graph is a number we computed or
validated, or a name from the preset registry; S3 keys never become paths or filter text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

import ffmpeg

from mpr_shared.contracts import JobKind, ProcessMedia, TrimMode
from mpr_shared.media import MEDIA_EXTENSIONS, extension
from mpr_shared.presets import Preset, Rendition
from mpr_transcoder.domain.errors import BadInput
from mpr_transcoder.domain.media import MediaInfo


class InputMode(StrEnum):
    """How FFmpeg reads the source: a downloaded local file, or a presigned URL."""

    DOWNLOAD = "download"
    URL = "url"


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
# The codec ffprobe reports for an encoder.
_CODEC_OF_ENCODER = {
    "libx264": "h264",
    "libx265": "hevc",
    "libvpx-vp9": "vp9",
    "libopus": "opus",
    "libmp3lame": "mp3",
    "aac": "aac",
    "mjpeg": "mjpeg",
}
# Codecs that re-encode an accurate trim, by output extension.
_TRIM_VIDEO = {".webm": ("libvpx-vp9", "libopus")}
_TRIM_AUDIO = {
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".aac": "aac",
    ".ogg": "libvorbis",
    ".flac": "flac",
    ".wav": "pcm_s16le",
}

Options = dict[str, object]


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


@dataclass(frozen=True, slots=True)
class _Request:
    """Everything one plan is built from."""

    job: ProcessMedia
    source: MediaInfo
    duration: float
    target: str
    protocols: str
    workdir: Path
    limits: Limits
    binary: str

    def input(self, **options: object) -> Any:
        """The source as an FFmpeg input, read only through the whitelisted protocols."""
        return ffmpeg.input(
            self.target,
            protocol_whitelist=self.protocols,
            format_whitelist=SOURCE_FORMATS,
            **options,
        )

    def compile(self, *streams: Any, path: Path | str, **options: object) -> list[str]:
        # -loglevel info: the job's log tail (JobCompleted.log_tail) then ends with the
        # encoders' and muxer's summaries; the failure reason still picks the error lines.
        # -nostats: progress comes from -progress, not from stats lines on stderr.
        stream = ffmpeg.output(*streams, str(path), **options).global_args(
            "-nostdin", "-hide_banner", "-loglevel", "info", "-nostats", "-progress", "pipe:1"
        )
        args: list[str] = stream.compile(cmd=self.binary, overwrite_output=True)
        return args

    def tolerance(self, expected: float) -> float:
        # 2 % covers AAC priming and frame rounding on long files; the floor covers short ones.
        return max(self.limits.duration_tolerance, expected * 0.02)

    def spans(self, expected: float) -> tuple[float, float]:
        """The duration range an output of ``expected`` seconds may have."""
        tolerance = self.tolerance(expected)
        return expected - tolerance, expected + tolerance

    def single(self, path: Path, expect: Expectation) -> tuple[PlannedOutput, ...]:
        return (PlannedOutput(path, self.job.output_key, expect),)


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


def codec_name(encoder: str | None) -> str | None:
    """The codec ffprobe reports for an encoder."""
    return _CODEC_OF_ENCODER.get(encoder or "", encoder)


def _container_options(muxer: str | None, limits: Limits) -> Options:
    options: Options = {}
    if muxer:
        options["f"] = muxer
    if muxer in MP4_MUXERS:
        # Move the moov atom to the front so players start before the download ends.
        # https://ffmpeg.org/ffmpeg-formats.html#Options-8 (movflags faststart)
        options["movflags"] = "+faststart"
    if limits.threads:
        options["threads"] = limits.threads
    return options


def video_options(preset: Preset) -> Options:
    """Encoder options of a video preset (codec, CRF, speed, pixel format)."""
    options: Options = {"c:v": preset.video_codec}
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


def audio_options(preset: Preset) -> Options:
    options: Options = {"c:a": preset.audio_codec}
    if preset.audio_bitrate:
        options["b:a"] = preset.audio_bitrate
    if preset.audio_channels:
        options["ac"] = preset.audio_channels
    if preset.sample_rate:
        options["ar"] = preset.sample_rate
    return options


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
    if ".." in PurePosixPath(job.output_key).parts:
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
    request = _Request(job, source, duration, target, protocols, workdir, limits, binary)
    if job.spec.kind is JobKind.TRIM:
        return _trim(request)  # a trim keeps the source's codecs: it has no preset (JobSpec)
    if preset is None:
        raise BadInput(f"a {job.spec.kind} job needs a preset")
    return _BUILDERS[job.spec.kind](request, preset)


def _transcode(request: _Request, preset: Preset) -> Plan:
    source, limits = request.source, request.limits
    if not source.has_video:
        raise BadInput(f"preset {preset.name!r} needs a video stream; the source has none")
    height = even_height(source.height, preset.height, limits.max_output_height)
    inp = request.input()
    streams = [inp["v:0"].filter("scale", -2, height)]
    options = video_options(preset)
    if source.has_audio:
        streams.append(inp["a:0"])
        options.update(audio_options(preset))
    path = request.workdir / f"output{preset.extension}"
    options.update(_container_options(preset.container, limits))
    low, high = request.spans(request.duration)
    expect = Expectation(
        min_duration=low,
        max_duration=high,
        video_codec=codec_name(preset.video_codec),
        audio_codec=codec_name(preset.audio_codec) if source.has_audio else None,
        height=height,
        needs_video=True,
        needs_audio=source.has_audio,
    )
    args = request.compile(*streams, path=path, **options)
    return Plan(args, request.duration, request.single(path, expect))


def _trim(request: _Request) -> Plan:
    spec, source = request.job.spec, request.source
    start, end = float(spec.start or 0.0), float(spec.end or request.duration)
    if start >= request.duration:
        raise BadInput(
            f"trim start {start:g}s is at or past the source's end ({request.duration:.3f}s)"
        )
    length = min(end, request.duration) - start
    mode = spec.mode or TrimMode.COPY
    suffix = output_suffix(request.job)
    path = request.workdir / f"output{suffix}"
    inp = request.input(ss=f"{start:.6f}", t=f"{length:.6f}")
    streams = [inp[name] for name, present in _present(source) if present]
    if not streams:  # only known when the source was not probed: take what exists
        streams = [inp["v:0?"], inp["a:0?"]]
    low, high = request.spans(length)
    if mode is TrimMode.COPY:
        options: Options = {"c": "copy", "avoid_negative_ts": "make_zero"}
        # A copy cut starts at the keyframe at or before `start`: it may run longer.
        high += COPY_TRIM_SLACK_SECONDS
    else:
        options = _accurate_codecs(suffix, source)
    expect = Expectation(
        min_duration=low,
        max_duration=high,
        needs_video=source.has_video,
        needs_audio=source.has_audio,
    )
    options.update(_container_options(_SUFFIX_MUXER.get(path.suffix), request.limits))
    args = request.compile(*streams, path=path, **options)
    notes = {"mode": str(mode), "start": start, "end": start + length}
    return Plan(args, length, request.single(path, expect), notes=notes)


def _present(source: MediaInfo) -> tuple[tuple[str, bool], ...]:
    """The source's first video and audio stream specifiers, and whether each exists."""
    return (("v:0", source.has_video), ("a:0", source.has_audio))


def _accurate_codecs(suffix: str, source: MediaInfo) -> Options:
    if not source.has_video:
        return {"c:a": _TRIM_AUDIO.get(suffix, "aac")}
    video, audio = _TRIM_VIDEO.get(suffix, ("libx264", "aac"))
    options: Options = {"c:v": video, "pix_fmt": "yuv420p"}
    if video == "libx264":
        options.update({"crf": 18, "preset": "veryfast"})
    else:
        options.update({"crf": 32, "b:v": 0, "row-mt": 1, "deadline": "good", "cpu-used": 4})
    if source.has_audio:
        options["c:a"] = audio
    return options


def _audio(request: _Request, preset: Preset) -> Plan:
    if not request.source.has_audio:
        raise BadInput("the source has no audio stream to extract")
    path = request.workdir / f"output{preset.extension}"
    options = {**audio_options(preset), **_container_options(preset.container, request.limits)}
    low, high = request.spans(request.duration)
    expect = Expectation(
        min_duration=low,
        max_duration=high,
        audio_codec=codec_name(preset.audio_codec),
        needs_audio=True,
    )
    args = request.compile(request.input()["a:0"], path=path, vn=None, **options)
    return Plan(args, request.duration, request.single(path, expect))


def _thumbnail(request: _Request, preset: Preset) -> Plan:
    if not request.source.has_video:
        raise BadInput("a thumbnail needs a video stream; the source has none")
    path = request.workdir / f"output{preset.extension}"
    options: Options = {"frames:v": 1, "f": preset.container, "update": 1}
    if preset.quality is not None:
        options["q:v"] = preset.quality
    if preset.pixel_format:
        options["pix_fmt"] = preset.pixel_format
    if request.limits.threads:
        options["threads"] = request.limits.threads
    if request.job.spec.count:
        video, expected, expect, notes = _sprite(request, int(request.job.spec.count))
    else:
        video, expected, expect, notes = _still(request, preset)
    args = request.compile(video, path=path, **options)
    return Plan(args, expected, request.single(path, expect), notes=notes)


_Frames = tuple[Any, float | None, Expectation, dict[str, object]]


def _sprite(request: _Request, count: int) -> _Frames:
    """``count`` frames spread over the source, tiled into one sheet."""
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    limits = request.limits
    height = even_height(request.source.height, SPRITE_TILE_HEIGHT, limits.max_output_height)
    video = (
        request.input()["v:0"]
        .filter("fps", fps=f"{count / request.duration:.6f}")
        .filter("scale", -2, height)
        .filter("tile", f"{cols}x{rows}")
    )
    expect = Expectation(video_codec="mjpeg", height=height * rows, needs_video=True)
    return video, request.duration, expect, {"tiles": f"{cols}x{rows}", "count": count}


def _still(request: _Request, preset: Preset) -> _Frames:
    """One frame at ``at`` (10 % into the source when not given)."""
    spec, duration = request.job.spec, request.duration
    at = float(spec.at) if spec.at is not None else round(duration * 0.1, 3)
    if at >= duration:
        raise BadInput(f"thumbnail time {at:g}s is at or past the source's end ({duration:.3f}s)")
    height = even_height(request.source.height, preset.height, request.limits.max_output_height)
    video = request.input(ss=f"{at:.6f}")["v:0"].filter("scale", -2, height)
    expect = Expectation(video_codec="mjpeg", height=height, needs_video=True)
    return video, None, expect, {"at": at}


def _hls(request: _Request, preset: Preset) -> Plan:
    source = request.source
    if not source.has_video:
        raise BadInput("HLS needs a video stream; the source has none")
    ladder = hls_ladder(preset, source.height or 0, request.limits.max_output_height)
    directory = request.workdir / "hls"
    streams, options = _hls_streams(request, preset, ladder)
    options.update(
        {
            "f": "hls",
            "hls_time": int(preset.segment_seconds or 6),
            "hls_playlist_type": "vod",
            "hls_segment_filename": str(directory / "%v" / "segment_%05d.ts"),
            "master_pl_name": HLS_MASTER,
        }
    )
    if request.limits.threads:
        options["threads"] = request.limits.threads
    args = request.compile(*streams, path=directory / "%v" / HLS_PLAYLIST, **options)
    low, high = request.spans(request.duration)
    expect = Expectation(
        min_duration=low,
        max_duration=high,
        video_codec="h264",
        audio_codec="aac" if source.has_audio else None,
        needs_video=True,
        needs_audio=source.has_audio,
    )
    layout = HlsLayout(directory, request.job.output_key, tuple(r for r, _ in ladder), expect)
    notes: dict[str, object] = {"renditions": [f"{r.name}@{h}" for r, h in ladder]}
    return Plan(args, request.duration, hls=layout, notes=notes)


def _hls_streams(
    request: _Request, preset: Preset, ladder: tuple[tuple[Rendition, int], ...]
) -> tuple[list[Any], Options]:
    """One scaled video (and the audio) per rung, with its bitrates and its name in the map."""
    inp = request.input()
    split = inp["v:0"].filter_multi_output("split", len(ladder))
    has_audio = request.source.has_audio
    options: Options = {
        "c:v": preset.video_codec,
        "preset": preset.encoder_preset or "veryfast",
        "pix_fmt": preset.pixel_format or "yuv420p",
        # Keyframes on segment boundaries in every rendition, so players can switch rungs.
        # https://ffmpeg.org/ffmpeg-formats.html#hls-2
        "force_key_frames": f"expr:gte(t,n_forced*{int(preset.segment_seconds or 6)})",
        "sc_threshold": 0,
    }
    streams: list[Any] = []
    stream_map = []
    for i, (rung, height) in enumerate(ladder):
        streams.append(split[i].filter("scale", -2, height))
        options[f"b:v:{i}"] = rung.video_bitrate
        options[f"maxrate:v:{i}"] = rung.max_rate
        options[f"bufsize:v:{i}"] = rung.buffer_size
        if has_audio:
            streams.append(inp["a:0"])
            options[f"b:a:{i}"] = rung.audio_bitrate
        stream_map.append(f"v:{i}" + (f",a:{i}" if has_audio else "") + f",name:{rung.name}")
    if has_audio:
        options["c:a"] = preset.audio_codec
    options["var_stream_map"] = " ".join(stream_map)
    return streams, options


_BUILDERS: dict[JobKind, Callable[[_Request, Preset], Plan]] = {
    JobKind.TRANSCODE: _transcode,
    JobKind.AUDIO: _audio,
    JobKind.THUMBNAIL: _thumbnail,
    JobKind.HLS: _hls,
}
