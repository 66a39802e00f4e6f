"""Data on stdout, everything else on stderr; NO_COLOR turns every style off (no-color.org)."""

from __future__ import annotations

import json
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


# Tables piped to another program are never folded to 80 columns (rich's default off a terminal).
PIPE_WIDTH = 1000


def console(stderr: bool) -> Console:
    """A console on stdout or stderr; without colour or any other ANSI style under NO_COLOR."""
    options: dict[str, Any] = {"stderr": stderr, "highlight": False, "emoji": False}
    if no_color():
        options["color_system"] = None
    made = Console(**options)
    if not made.is_terminal and "COLUMNS" not in os.environ:
        made.width = PIPE_WIDTH
    return made


class Out:
    """The two streams of one command."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.data = console(stderr=False)
        self.err = console(stderr=True)

    def json(self, value: Any) -> None:
        """The machine-readable result: exactly one JSON document on stdout."""
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def say(self, message: str) -> None:
        """A message for the person at the terminal (stderr), never part of the data."""
        self.err.print(message, markup=False, soft_wrap=True)

    def error(self, message: str) -> None:
        """One red line on stderr, never wrapped."""
        self.err.print(message, style="red", markup=False, soft_wrap=True)

    def note(self, message: str, style: str = "dim") -> None:
        self.err.print(message, style=style, markup=False, soft_wrap=True)

    def spinner(self, message: str) -> AbstractContextManager[object]:
        """A spinner on stderr while something is awaited; nothing when stderr is no terminal."""
        return self.err.status(message) if self.err.is_terminal else nullcontext()

    def show(self, renderable: RenderableType) -> None:
        """A table or block on stdout, without the padding rich leaves at the end of lines."""
        with self.data.capture() as captured:
            self.data.print(renderable)
        lines = captured.get().splitlines()
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
        sys.stdout.flush()

    def line(self, text: str, style: str | None = None) -> None:
        """One line of data on stdout, printed as is (no markup, no wrapping)."""
        self.data.print(text, style=style, markup=False, soft_wrap=True, highlight=False)


def size(n: Any) -> str:
    """1536 -> '1.5 KiB'."""
    if not isinstance(n, int | float):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def seconds(value: Any) -> str:
    """83.4 -> '1:23'."""
    if not isinstance(value, int | float):
        return "-"
    total = round(value)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def age(timestamp: Any, now: datetime | None = None) -> str:
    """An ISO-8601 time as '3m ago'."""
    if not isinstance(timestamp, str):
        return "-"
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    delta = ((now or datetime.now(UTC)) - then).total_seconds()
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= length:
            return f"{int(delta // length)}{unit} ago"
    return f"{max(int(delta), 0)}s ago"


STATUS_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "ok": "green",
    "pending": "cyan",
    "busy": "yellow",
    "idle": "green",
}
