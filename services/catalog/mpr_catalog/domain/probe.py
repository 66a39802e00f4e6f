"""What the catalog keeps of ffprobe's output, and when a file counts as unreadable."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from mpr_shared.contracts import ProbeStatus

MAX_ERROR_CHARS = 2000


class UnreadableMedia(Exception):
    """The object cannot be decoded (empty, truncated, not media); the reason is for humans."""


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """A finished probe: a summary, or the reason it failed."""

    status: ProbeStatus
    summary: dict[str, Any] | None = None
    error: str | None = None

    @property
    def duration(self) -> float | None:
        return (self.summary or {}).get("duration")

    @property
    def has_video(self) -> bool:
        return any(s.get("type") == "video" for s in (self.summary or {}).get("streams", ()))

    @classmethod
    def failed(cls, reason: str) -> ProbeOutcome:
        return cls(ProbeStatus.FAILED, error=reason[:MAX_ERROR_CHARS])


EMPTY_OBJECT = ProbeOutcome.failed("object is empty (0 bytes)")


# Cover art and thumbnails arrive as one-frame "video" streams; they make no video.
_ATTACHED_PIC = "attached_pic"


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored summary of ffprobe's JSON; UnreadableMedia when no audio or video stream."""
    fmt = raw.get("format") or {}
    streams = [_stream(s) for s in raw.get("streams") or () if _is_media(s)]
    if not streams:
        raise UnreadableMedia("no audio or video stream found")
    durations = [s["duration"] for s in streams if s.get("duration")]
    duration = _float(fmt.get("duration")) or (max(durations) if durations else None)
    return {
        "container": fmt.get("format_name"),
        "container_long_name": fmt.get("format_long_name"),
        "duration": duration,
        "size": _int(fmt.get("size")),
        "bit_rate": _int(fmt.get("bit_rate")),
        "streams": streams,
    }


def _is_media(stream: dict[str, Any]) -> bool:
    if stream.get("codec_type") == "audio":
        return True
    if stream.get("codec_type") != "video":
        return False
    return not (stream.get("disposition") or {}).get(_ATTACHED_PIC)


def _stream(s: dict[str, Any]) -> dict[str, Any]:
    kind = s.get("codec_type")
    out: dict[str, Any] = {
        "index": s.get("index"),
        "type": kind,
        "codec": s.get("codec_name"),
        "profile": s.get("profile"),
        "bit_rate": _int(s.get("bit_rate")),
        "duration": _float(s.get("duration")),
    }
    if kind == "video":
        out |= {
            "width": _int(s.get("width")),
            "height": _int(s.get("height")),
            "frame_rate": _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate")),
            "pixel_format": s.get("pix_fmt"),
        }
    else:
        out |= {
            "channels": _int(s.get("channels")),
            "channel_layout": s.get("channel_layout"),
            "sample_rate": _int(s.get("sample_rate")),
        }
    return out


def _rate(value: Any) -> float | None:
    """'30000/1001' → 29.97; '0/0' (unknown) → None."""
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return round(float(rate), 3) if rate > 0 else None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
