"""What ffprobe says about a file, reduced to what planning and verification need."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A probed file: its duration and first video and audio streams."""

    duration: float | None
    format_name: str | None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    audio_codec: str | None = None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @classmethod
    def from_ffprobe(cls, data: dict[str, Any]) -> MediaInfo:
        """Build from ``ffprobe -show_format -show_streams -print_format json`` output."""
        fmt = data.get("format") or {}
        streams = data.get("streams") or []
        # Cover art is a one-frame "video" stream; it is not the video we transcode.
        video = next(
            (
                s
                for s in streams
                if s.get("codec_type") == "video"
                and not (s.get("disposition") or {}).get("attached_pic")
            ),
            None,
        )
        audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
        duration = _float(fmt.get("duration"))
        if duration is None:
            durations = [_float(s.get("duration")) for s in (video, audio) if s]
            duration = max((d for d in durations if d is not None), default=None)
        return cls(
            duration=duration,
            format_name=fmt.get("format_name"),
            video_codec=video.get("codec_name") if video else None,
            width=int(video["width"]) if video and video.get("width") else None,
            height=int(video["height"]) if video and video.get("height") else None,
            audio_codec=audio.get("codec_name") if audio else None,
        )

    def summary(self) -> dict[str, Any]:
        """The probe data a JobCompleted carries for each output."""
        return {
            key: value
            for key, value in {
                "duration": None if self.duration is None else round(self.duration, 3),
                "format": self.format_name,
                "video_codec": self.video_codec,
                "width": self.width,
                "height": self.height,
                "audio_codec": self.audio_codec,
            }.items()
            if value is not None
        }
