"""Test media generated with FFmpeg at test time (lavfi testsrc2 + sine). Never committed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def make_video(
    path: Path,
    *,
    seconds: float = 2.0,
    size: str = "320x240",
    rate: int = 25,
    audio: bool = True,
    vcodec: str = "libx264",
    acodec: str = "aac",
    extra: tuple[str, ...] = (),
) -> Path:
    """A video of ``seconds`` with a moving test pattern and (optionally) a sine tone."""
    args = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast", "-g", str(rate)]
    if audio:
        args += ["-c:a", acodec]
    args += [*extra, "-shortest", str(path)]
    subprocess.run(args, check=True, timeout=300)
    return path


def make_audio(path: Path, *, seconds: float = 2.0, codec: str | None = None) -> Path:
    args = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=44100:duration={seconds}",
    ]
    if codec:
        args += ["-c:a", codec]
    subprocess.run([*args, str(path)], check=True, timeout=120)
    return path


def ffprobe(path: Path | str) -> dict:
    """ffprobe's JSON (format + streams) for a local path or URL."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def stream(probe: dict, kind: str) -> dict:
    """The first stream of ``kind`` ('video' or 'audio')."""
    return next(s for s in probe["streams"] if s["codec_type"] == kind)
