"""What makes an output right: its probe against the plan's expectation, the HLS master
playlist against the ladder, and which keys under an HLS prefix are a job's own."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mpr_shared.presets import Rendition
from mpr_transcoder.domain.ffmpeg_args import HLS_MASTER, HLS_PLAYLIST, Expectation
from mpr_transcoder.domain.media import MediaInfo

# The names an HLS job writes under its prefix; only these are ever deleted there, so a
# user-chosen prefix that holds other objects keeps them.
_HLS_NAME = re.compile(
    rf"^(?:{re.escape(HLS_MASTER)}|[0-9A-Za-z_-]+/(?:{re.escape(HLS_PLAYLIST)}|segment_\d+\.ts))$"
)


def hls_owned_keys(prefix: str, keys: Iterable[str]) -> list[str]:
    """The keys under ``prefix`` that an HLS job of ours would have written."""
    return [k for k in keys if k.startswith(prefix) and _HLS_NAME.match(k[len(prefix) :])]


def verification_problems(info: MediaInfo, expect: Expectation) -> list[str]:
    """What makes ``info`` differ from ``expect`` (empty when it passes)."""
    problems = []
    if expect.needs_video and not info.has_video:
        problems.append("no video stream")
    if expect.needs_audio and not info.has_audio:
        problems.append("no audio stream")
    if expect.video_codec and info.video_codec != expect.video_codec:
        problems.append(f"video codec {info.video_codec}, expected {expect.video_codec}")
    if expect.audio_codec and info.audio_codec != expect.audio_codec:
        problems.append(f"audio codec {info.audio_codec}, expected {expect.audio_codec}")
    if expect.height and info.height != expect.height:
        problems.append(f"height {info.height}, expected {expect.height}")
    problems += _duration_problems(info, expect)
    return problems


def _duration_problems(info: MediaInfo, expect: Expectation) -> list[str]:
    if expect.min_duration is None and expect.max_duration is None:
        return []
    low = max(0.0, expect.min_duration or 0.0)
    high = expect.max_duration if expect.max_duration is not None else float("inf")
    if info.duration is None:
        return ["no duration"]
    if not low <= info.duration <= high:
        return [f"duration {info.duration:.3f}s, expected {low:.3f}s to {high:.3f}s"]
    return []


def master_playlist_problem(text: str, renditions: Iterable[Rendition]) -> str | None:
    """Why an HLS master playlist does not list exactly one playlist per rung (None: it does)."""
    listed = [line.strip() for line in text.splitlines() if line and not line.startswith("#")]
    expected = [f"{r.name}/{HLS_PLAYLIST}" for r in renditions]
    if sorted(listed) != sorted(expected):
        return f"HLS master lists {listed}, expected {expected}"
    return None
