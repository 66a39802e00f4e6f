"""Job kinds and the preset registry: what each named output looks like. JobSpec
(mpr_shared.jobspec) checks requests against it; the transcoder turns presets into FFmpeg
arguments."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class JobKind(StrEnum):
    TRANSCODE = "transcode"
    TRIM = "trim"
    AUDIO = "audio"
    THUMBNAIL = "thumbnail"
    HLS = "hls"


class Rendition(BaseModel):
    """One rung of an adaptive (HLS) ladder."""

    model_config = ConfigDict(frozen=True)

    name: str
    height: int
    video_bitrate: str
    max_rate: str
    buffer_size: str
    audio_bitrate: str = "128k"


class Preset(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Preset name used in job requests.")
    kind: JobKind = Field(description="The job kind this preset serves.")
    description: str
    container: str = Field(description="FFmpeg muxer (mp4, webm, mp3, image2, hls).")
    extension: str = Field(description="Output file extension, with the dot.")
    video_codec: str | None = None
    audio_codec: str | None = None
    height: int | None = Field(None, description="Target height; never upscaled past the source.")
    crf: int | None = None
    video_bitrate: str | None = None
    encoder_preset: str | None = Field(None, description="x264/x265 speed preset.")
    pixel_format: str | None = "yuv420p"
    audio_bitrate: str | None = None
    audio_channels: int | None = None
    sample_rate: int | None = None
    quality: int | None = Field(None, description="JPEG quality (2 best … 31 worst).")
    ladder: tuple[Rendition, ...] = ()
    segment_seconds: int | None = None


_LADDER = (
    Rendition(
        name="1080p",
        height=1080,
        video_bitrate="5000k",
        max_rate="5350k",
        buffer_size="7500k",
        audio_bitrate="192k",
    ),
    Rendition(
        name="720p", height=720, video_bitrate="2800k", max_rate="2996k", buffer_size="4200k"
    ),
    Rendition(
        name="480p",
        height=480,
        video_bitrate="1400k",
        max_rate="1498k",
        buffer_size="2100k",
        audio_bitrate="96k",
    ),
)


def _h264(height: int, crf: int) -> Preset:
    return Preset(
        name=f"h264-{height}p",
        kind=JobKind.TRANSCODE,
        description=f"H.264/AAC MP4 at {height}p (CRF {crf}), web-ready (+faststart)",
        container="mp4",
        extension=".mp4",
        video_codec="libx264",
        audio_codec="aac",
        height=height,
        crf=crf,
        encoder_preset="veryfast",
        audio_bitrate="128k",
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _h264(1080, 22),
        _h264(720, 23),
        _h264(480, 24),
        Preset(
            name="hevc-1080p",
            kind=JobKind.TRANSCODE,
            description="H.265/AAC MP4 at 1080p (CRF 26), tagged hvc1 for Apple players",
            container="mp4",
            extension=".mp4",
            video_codec="libx265",
            audio_codec="aac",
            height=1080,
            crf=26,
            encoder_preset="fast",
            audio_bitrate="128k",
        ),
        Preset(
            name="vp9-720p",
            kind=JobKind.TRANSCODE,
            description="VP9/Opus WebM at 720p (CRF 33, constrained quality)",
            container="webm",
            extension=".webm",
            video_codec="libvpx-vp9",
            audio_codec="libopus",
            height=720,
            crf=33,
            video_bitrate="1500k",
            audio_bitrate="96k",
        ),
        Preset(
            name="audio-aac",
            kind=JobKind.AUDIO,
            description="AAC-LC audio in an M4A container, 192 kb/s stereo",
            container="ipod",
            extension=".m4a",
            audio_codec="aac",
            audio_bitrate="192k",
            audio_channels=2,
            sample_rate=48000,
            pixel_format=None,
        ),
        Preset(
            name="audio-mp3",
            kind=JobKind.AUDIO,
            description="MP3 audio, 192 kb/s stereo",
            container="mp3",
            extension=".mp3",
            audio_codec="libmp3lame",
            audio_bitrate="192k",
            audio_channels=2,
            sample_rate=44100,
            pixel_format=None,
        ),
        Preset(
            name="thumbnail-jpg",
            kind=JobKind.THUMBNAIL,
            description="JPEG still (or a sprite sheet with count), 320 px high",
            container="image2",
            extension=".jpg",
            video_codec="mjpeg",
            height=320,
            quality=3,
            pixel_format="yuvj420p",
        ),
        Preset(
            name="hls-h264",
            kind=JobKind.HLS,
            description="HLS ladder 1080p/720p/480p (H.264/AAC, 6 s segments), no upscaling",
            container="hls",
            extension=".m3u8",
            video_codec="libx264",
            audio_codec="aac",
            encoder_preset="veryfast",
            ladder=_LADDER,
            segment_seconds=6,
        ),
    )
}

# The preset a kind uses when the request names none (trim keeps the source's codecs).
DEFAULT_PRESET: dict[JobKind, str | None] = {
    JobKind.TRANSCODE: None,
    JobKind.TRIM: None,
    JobKind.AUDIO: "audio-aac",
    JobKind.THUMBNAIL: "thumbnail-jpg",
    JobKind.HLS: "hls-h264",
}


class PresetError(ValueError):
    """A job names no preset, an unknown one or one of another kind; ``valid`` lists its kind's."""

    def __init__(self, message: str, valid: list[str]) -> None:
        super().__init__(message)
        self.valid = valid


class UnknownPreset(PresetError):
    def __init__(self, name: str, kind: JobKind | None = None) -> None:
        valid = presets_for(kind)
        of_kind = f" for kind {kind.value!r}" if kind is not None else ""
        super().__init__(
            f"unknown preset {name!r}{of_kind}; valid presets: {', '.join(valid)}", valid
        )


def presets_for(kind: JobKind | None = None) -> list[str]:
    """The preset names of ``kind`` (of every kind when None), sorted."""
    return sorted(n for n, p in PRESETS.items() if kind is None or p.kind is kind)


def get_preset(name: str, kind: JobKind | None = None) -> Preset:
    """The preset called ``name`` (for ``kind``, when given); raises UnknownPreset."""
    preset = PRESETS.get(name)
    if preset is None or (kind is not None and preset.kind is not kind):
        raise UnknownPreset(name, kind)
    return preset
