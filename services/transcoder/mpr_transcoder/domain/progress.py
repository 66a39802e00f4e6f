"""FFmpeg ``-progress pipe:1`` parsing and the throttle that turns it into JobProgress.

https://ffmpeg.org/ffmpeg.html#Advanced-options (``-progress``): blocks of ``key=value`` lines,
each ending with ``progress=continue`` or ``progress=end``. ``out_time_ms`` holds microseconds
too (a long-standing FFmpeg quirk), so only ``out_time_us`` is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressSample:
    """One progress block from FFmpeg."""

    out_time_seconds: float | None
    fps: float | None
    speed: float | None
    done: bool


def _number(value: str | None, suffix: str = "") -> float | None:
    if value is None:
        return None
    value = value.strip().removesuffix(suffix)
    try:
        number = float(value)
    except ValueError:  # FFmpeg writes N/A before it knows
        return None
    return number if math.isfinite(number) and number >= 0 else None


class ProgressParser:
    """Feeds on stdout lines and returns a sample at the end of each block."""

    def __init__(self) -> None:
        self._block: dict[str, str] = {}

    def feed(self, line: str) -> ProgressSample | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        self._block[key] = value
        if key != "progress":
            return None
        block, self._block = self._block, {}
        out_us = _number(block.get("out_time_us"))
        return ProgressSample(
            out_time_seconds=None if out_us is None else out_us / 1_000_000,
            fps=_number(block.get("fps")),
            speed=_number(block.get("speed"), "x"),
            done=value == "end",
        )


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """A progress figure worth publishing."""

    percent: float
    out_time_seconds: float | None
    fps: float | None
    speed: float | None
    eta_seconds: float | None


class ProgressThrottle:
    """Publishes at most once per ``interval`` seconds, and at every 10 % step."""

    def __init__(
        self, expected_seconds: float | None, clock: Callable[[], float], interval: float = 1.0
    ) -> None:
        self.expected = expected_seconds if expected_seconds and expected_seconds > 0 else None
        self.clock = clock
        self.interval = interval
        self._last_at: float | None = None
        self._last_decile = 0
        self._last_percent = 0.0

    def percent(self, sample: ProgressSample) -> float:
        if sample.done:
            return 100.0
        if self.expected is None or sample.out_time_seconds is None:
            return self._last_percent
        return min(99.9, max(self._last_percent, sample.out_time_seconds / self.expected * 100))

    def update(self, sample: ProgressSample) -> ProgressUpdate | None:
        """The update to publish for ``sample``, or None when it is too soon."""
        percent = self.percent(sample)
        decile = int(percent // 10)
        now = self.clock()
        due_by_time = self._last_at is None or now - self._last_at >= self.interval
        if not (due_by_time or decile > self._last_decile or sample.done):
            return None
        self._last_at, self._last_decile, self._last_percent = now, decile, percent
        return ProgressUpdate(
            percent=round(percent, 2),
            out_time_seconds=sample.out_time_seconds,
            fps=sample.fps,
            speed=sample.speed,
            eta_seconds=self._eta(sample),
        )

    def _eta(self, sample: ProgressSample) -> float | None:
        if sample.done:
            return 0.0
        if not (self.expected and sample.speed and sample.out_time_seconds is not None):
            return None
        return round(max(0.0, self.expected - sample.out_time_seconds) / sample.speed, 2)
