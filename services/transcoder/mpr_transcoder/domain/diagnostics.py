"""FFmpeg's stderr reduced to the lines that explain a failure, fit to show a user: presigned
URLs unsigned, and the replica's scratch paths named for what they are ("the source")."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mpr_shared.contracts import bounded_tail

SOURCE_NAME = "the source"
OUTPUT_NAME = "the output"

# FFmpeg prints these on the lines that explain a failure.
_MEANINGFUL = re.compile(
    r"error|invalid|no such|not found|failed|unknown|unsupported|could not|cannot|unable|"
    r"denied|refused|timed out|corrupt|missing|impossible|incorrect|does not|not allowed|"
    r"protocol|moov atom|whitelist",
    re.IGNORECASE,
)
# Lines that say nothing about the cause.
_NOISE = re.compile(r"^(Conversion failed!|Exiting normally.*|\s*Last message repeated.*)$")
# A URL's query string: with INPUT_MODE=url it holds the presigned signature, and error lines
# travel on to the database, SSE and webhooks.
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#]+)[?#][^\s]*?(?=:?\s|:?$|['\"])", re.I)


def scrub_urls(line: str) -> str:
    """``line`` with every URL's query string (presigned credentials) cut off."""
    return _URL_QUERY.sub(r"\1", line)


def extract_error_lines(stderr_lines: Iterable[str], limit: int = 5) -> list[str]:
    """FFmpeg's last meaningful error lines (deduplicated, newest last, URLs unsigned)."""
    lines = [scrub_urls(line.strip()) for line in stderr_lines if line.strip()]
    lines = [line for line in lines if not _NOISE.match(line)] or lines
    meaningful = [line for line in lines if _MEANINGFUL.search(line)] or lines
    picked: list[str] = []
    for line in reversed(meaningful):
        if line not in picked:
            picked.append(line)
        if len(picked) == limit:
            break
    return [line[:500] for line in reversed(picked)]


def log_tail(stderr_lines: Iterable[str]) -> list[str]:
    """FFmpeg's last log lines for a job event: blank lines dropped, URLs unsigned, bounded."""
    return bounded_tail([scrub_urls(line.rstrip()) for line in stderr_lines if line.strip()])


def name_scratch_paths(lines: Iterable[str], *, source: str, scratch: str) -> list[str]:
    """``lines`` with the source (a local path or URL) called "the source" and any other path
    under the job's ``scratch`` directory "the output": users never see where a replica works."""
    # Scratch names are generated (no spaces, quotes, colons or brackets): a path ends there,
    # and never with the full stop of the sentence around it.
    path_char, last_char = r"[^\s'\":()\[\],]", r"[^\s'\":()\[\],.]"
    scratch_path = rf"{re.escape(scratch.rstrip('/'))}/(?:{path_char}*{last_char})?"
    pattern = re.compile(rf"{re.escape(scrub_urls(source))}|{scratch_path}")

    def name(match: re.Match[str]) -> str:
        return SOURCE_NAME if match.group(0) == scrub_urls(source) else OUTPUT_NAME

    return [pattern.sub(name, line) for line in lines]
