"""Bytes to and from presigned S3 URLs, with a progress bar of bytes and rate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mpr_cli.output import Out

CHUNK = 1024 * 1024


def bytes_bar(out: Out) -> Progress:
    """Bytes done of total, rate and time left; on stderr, and only on a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=out.err,
        disable=not out.err.is_terminal,
    )


class Meter:
    """Advances one bar from several threads; a retried part takes its bytes back first."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def add(self, n: int) -> None:
        self.progress.advance(self.task, n)


def file_chunks(
    path: Path, offset: int, length: int, counted: Callable[[int], None]
) -> Iterator[bytes]:
    """``length`` bytes of ``path`` from ``offset``, one MiB at a time, each one counted."""
    with path.open("rb") as f:
        f.seek(offset)
        left = length
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{path} is shorter than when the upload started")
            left -= len(chunk)
            counted(len(chunk))
            yield chunk
