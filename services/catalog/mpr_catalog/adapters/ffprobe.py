"""MediaProber on the ffprobe binary, reading the object through a presigned URL.

Why a URL and not a download: ffprobe reads the container header and seeks with HTTP range
requests, so probing a multi-GB file moves kilobytes (bench/bench_catalog.py measures both).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

from mpr_catalog.application.ports import MediaUnreachable
from mpr_catalog.domain.probe import UnreadableMedia

# Only the network protocols a presigned URL needs: nothing can make ffprobe open local files.
# https://ffmpeg.org/ffmpeg-protocols.html#Protocol-Options (protocol_whitelist)
PROTOCOL_WHITELIST = "https,http,tls,tcp"
# That alone does not stop a playlist or concat list named .mp4 from making ffprobe fetch the
# http(s) URLs inside it (SSRF), so only the demuxers of the extensions MPR accepts may open the
# object (mpr_shared.media; .wmv is asf). Names as `ffprobe -formats` prints them; a multi-name
# demuxer matches on any of its names.
# https://ffmpeg.org/ffmpeg-formats.html#Format-Options (format_whitelist)
FORMAT_WHITELIST = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,asf,mpegts,mp3,aac,wav,flac,ogg"

# ffprobe's messages for failures of the transport, not of the file.
_TRANSIENT = re.compile(
    r"Connection refused|Connection reset|timed out|Network is unreachable|No route to host"
    r"|Server returned 5\d\d|Server returned 403|Server returned 429|Name or service not known"
    r"|Temporary failure in name resolution|Immediate exit requested",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(r"Server returned 404", re.IGNORECASE)
_URL = re.compile(r"https?://\S+?(?=:? |$)", re.MULTILINE)


class FfprobeProber:
    """Runs ``ffprobe -show_format -show_streams`` as a subprocess (never blocks the loop)."""

    def __init__(
        self,
        url_for: Callable[[str, str], str],
        *,
        timeout: float = 60.0,
        binary: str = "ffprobe",
    ) -> None:
        self._url_for = url_for
        self._timeout = timeout
        self._binary = binary

    async def probe(self, bucket: str, key: str) -> dict[str, Any]:
        returncode, out, err = await self._run(self._args(self._url_for(bucket, key)))
        # The URL carries a signature: never let it reach logs or the database.
        reason = _reason(_URL.sub(f"s3://{bucket}/{key}", err.decode(errors="replace")))
        if returncode != 0:
            if _TRANSIENT.search(reason):
                raise MediaUnreachable(reason)
            if _NOT_FOUND.search(reason):
                raise UnreadableMedia("object not found in the bucket")
            raise UnreadableMedia(reason)
        try:
            summary: dict[str, Any] = json.loads(out)
        except json.JSONDecodeError as exc:
            raise UnreadableMedia(f"ffprobe printed no JSON: {exc}") from exc
        return summary

    def _args(self, url: str) -> list[str]:
        return [
            self._binary,
            "-hide_banner",
            "-v",
            "error",
            "-protocol_whitelist",
            PROTOCOL_WHITELIST,
            "-format_whitelist",
            FORMAT_WHITELIST,
            # Per-read network timeout, in microseconds.
            # https://ffmpeg.org/ffmpeg-protocols.html#Protocol-Options (rw_timeout)
            "-rw_timeout",
            str(int(self._timeout * 1_000_000)),
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            "-i",
            url,
        ]

    async def _run(self, args: list[str]) -> tuple[int, bytes, bytes]:
        """Exit code, stdout and stderr of ffprobe; killed when it outlives the timeout."""
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (shutdown).
            async with asyncio.timeout(self._timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            raise MediaUnreachable(f"ffprobe timed out after {self._timeout:g} s") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return proc.returncode or 0, out, err


def _reason(stderr: str) -> str:
    """ffprobe's last error lines, one paragraph."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or "ffprobe failed without a message"
