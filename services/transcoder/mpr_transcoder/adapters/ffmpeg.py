"""FFmpeg as an asyncio subprocess (argument lists, never a shell, never blocking the event
loop: broker heartbeats keep flowing while a transcode runs), and probes in-process.

A probe opens the file with PyAV, FFmpeg's libraries loaded once into the replica, in a worker
thread: starting ffprobe for each probe cost ~150 ms of CPU and 140-480 ms of wall time per
short job on a loaded 2-core machine (bench/README.md), reading the same facts in-process
~5 ms. A file the in-process probe cannot read is probed again by the ffprobe binary of the
FFmpeg that runs the jobs, so a failure carries that FFmpeg's own error lines (and a file only
the two builds disagree on is judged by the one that will read it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import shutil
import signal
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

import av

from mpr_transcoder.application.ports import FFprobeFailed, ProgressCallback, RunResult
from mpr_transcoder.domain.diagnostics import extract_error_lines, log_tail
from mpr_transcoder.domain.errors import FFmpegStopped
from mpr_transcoder.domain.progress import ProgressParser

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 64
PROBE_TIMEOUT_SECONDS = 120.0
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] | None = getattr(libc, "prctl", None)
    return prctl


_PRCTL = _load_prctl()  # resolved before any fork: the child only makes one syscall


# util-linux's setpriv sets the same death signal and execs FFmpeg, which lets Python spawn
# with vfork instead of the fork a preexec_fn forces (~10 ms less per job with a big heap).
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
_SETPRIV_PREFIX = (_SETPRIV, "--pdeathsig", "KILL", "--") if _SETPRIV else ()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL FFmpeg when the replica dies, even by SIGKILL,
    so no orphan keeps writing into a work dir that the next start sweeps away."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class SubprocessRunner:
    """The real FFmpegRunner: FFmpeg as a subprocess, probes in-process (ffprobe on failure)."""

    def __init__(self, ffmpeg_binary: str = "ffmpeg", ffprobe_binary: str = "ffprobe") -> None:
        self.ffmpeg_binary = ffmpeg_binary
        self.ffprobe_binary = ffprobe_binary

    async def check(self) -> None:
        """Readiness: both binaries can be found."""
        missing = [b for b in (self.ffmpeg_binary, self.ffprobe_binary) if not shutil.which(b)]
        if missing:
            raise FileNotFoundError(f"not found: {', '.join(missing)}")

    async def run(
        self, args: list[str], *, on_progress: ProgressCallback, stop: asyncio.Event
    ) -> RunResult:
        """Run FFmpeg; kill it at once when ``stop`` is set."""
        proc = await _spawn([*_SETPRIV_PREFIX, *args])
        tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        readers = asyncio.gather(
            _read_progress(proc.stdout, on_progress), _read_lines(proc.stderr, tail)
        )
        try:
            stopped = await _wait_or_kill(proc, stop)
            await readers
        finally:
            await _reap(proc, readers)
        return RunResult(proc.returncode, extract_error_lines(tail), stopped, log_tail(tail))

    async def probe(
        self, target: str, *, protocols: str, formats: str | None = None
    ) -> dict[str, Any]:
        """ffprobe's JSON (format and streams) for a local path or URL."""
        try:
            return await asyncio.to_thread(_probe_in_process, target, protocols, formats)
        except Exception as exc:  # any doubt: ffprobe decides, with its own error lines
            log.debug("in-process probe failed (%s); asking ffprobe", exc)
        return await self._ffprobe(target, protocols=protocols, formats=formats)

    async def _ffprobe(
        self, target: str, *, protocols: str, formats: str | None = None
    ) -> dict[str, Any]:
        args = [self.ffprobe_binary, "-v", "error", "-protocol_whitelist", protocols]
        if formats:
            args += ["-format_whitelist", formats]
        args += ["-print_format", "json", "-show_format", "-show_streams", target]
        out, err, returncode = await _communicate(args)
        lines = extract_error_lines(err.decode("utf-8", "replace").splitlines())
        if returncode is not None and returncode < 0:
            raise FFmpegStopped(f"a signal from outside the replica stopped ffprobe ({returncode})")
        if returncode != 0:
            raise FFprobeFailed(f"ffprobe exited with {returncode}", lines)
        try:
            data: dict[str, Any] = json.loads(out or b"{}")
        except json.JSONDecodeError:
            raise FFprobeFailed("ffprobe printed no JSON", lines) from None
        if not data.get("streams"):
            raise FFprobeFailed("no audio or video streams", lines or ["no streams found"])
        return data


async def ffmpeg_version(binary: str = "ffmpeg") -> str | None:
    """FFmpeg's version ("5.1.6-0+deb12u1"), from the first line of ``ffmpeg -version``."""
    try:
        out, _, returncode = await _communicate([binary, "-hide_banner", "-version"])
    except (OSError, FFprobeFailed) as exc:
        log.warning("could not read FFmpeg's version: %s", exc)
        return None
    words = out.decode("utf-8", "replace").split(maxsplit=3)
    if returncode != 0 or words[:2] != ["ffmpeg", "version"] or len(words) < 3:
        return None
    return words[2][:128]


def _probe_in_process(target: str, protocols: str, formats: str | None) -> dict[str, Any]:
    """What ``ffprobe -show_format -show_streams`` reports that MediaInfo reads, from PyAV;
    raises when the file does not open or has neither audio nor video."""
    options = {"protocol_whitelist": protocols}
    if formats:
        options["format_whitelist"] = formats
    with av.open(target, container_options=options, timeout=PROBE_TIMEOUT_SECONDS) as container:
        streams = [_stream_facts(s) for s in container.streams]
        duration = container.duration
        data: dict[str, Any] = {
            "format": {
                "format_name": container.format.name,
                "duration": None if duration is None else duration / av.time_base,
            },
            "streams": streams,
        }
    if not any(s["codec_type"] in ("audio", "video") for s in streams):
        raise ValueError("no audio or video streams")
    return data


def _stream_facts(stream: Any) -> dict[str, Any]:
    context = stream.codec_context
    facts: dict[str, Any] = {
        "codec_type": stream.type,
        # The codec's name, not its decoder's ("h264", never "libdav1d"), as ffprobe prints it.
        "codec_name": context.codec.canonical_name if context is not None else None,
        "disposition": {"attached_pic": int(bool(stream.disposition & _ATTACHED_PIC))},
    }
    if stream.duration is not None and stream.time_base is not None:
        facts["duration"] = float(stream.duration * stream.time_base)
    if stream.type == "video" and context is not None:
        facts["width"], facts["height"] = context.width, context.height
    return facts


_ATTACHED_PIC = av.stream.Disposition.attached_pic


async def _spawn(args: list[str]) -> asyncio.subprocess.Process:
    """Start FFmpeg or ffprobe in a session of its own, dying with the replica."""
    return await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Out of the replica's process group: SIGTERM to the group (honcho, systemd's
        # KillMode=mixed, `kill -TERM -PGID`) is the replica's to handle, which hands the job
        # back; FFmpeg would exit 255 and fail the job. It still dies with the replica (the
        # death signal), and the replica kills it when a job is stopped.
        start_new_session=True,
        preexec_fn=_die_with_parent if _PRCTL and not _SETPRIV else None,
    )


async def _wait_or_kill(proc: asyncio.subprocess.Process, stop: asyncio.Event) -> bool:
    """Wait for FFmpeg to exit; kill it when ``stop`` fires first (returns True then)."""
    waiter = asyncio.ensure_future(proc.wait())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopped = not waiter.done()
        if stopped:
            _kill(proc)
        await waiter
        return stopped
    finally:
        stopper.cancel()


async def _reap(proc: asyncio.subprocess.Process, readers: asyncio.Future[Any]) -> None:
    """Leave no process or reader behind, also when the caller was cancelled."""
    if proc.returncode is None:
        _kill(proc)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
    if not readers.done():
        readers.cancel()
        with contextlib.suppress(BaseException):
            await readers


async def _read_progress(
    stream: asyncio.StreamReader | None, on_progress: ProgressCallback
) -> None:
    if stream is None:
        return
    parser = ProgressParser()
    async for raw in stream:
        sample = parser.feed(raw.decode("utf-8", "replace"))
        if sample is not None:
            try:
                await on_progress(sample)
            except Exception:  # a lost progress event must not kill the transcode
                log.warning("could not publish progress", exc_info=True)


async def _read_lines(stream: asyncio.StreamReader | None, tail: deque[str]) -> None:
    if stream is None:
        return
    async for raw in stream:
        tail.append(raw.decode("utf-8", "replace").rstrip())


async def _communicate(args: list[str]) -> tuple[bytes, bytes, int | None]:
    """Run ffprobe to its end (or its timeout): stdout, stderr, exit code."""
    proc = await _spawn([*_SETPRIV_PREFIX, *args])
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        _kill(proc)
        await proc.wait()
        raise FFprobeFailed("ffprobe timed out", ["ffprobe timed out"]) from None
    finally:
        if proc.returncode is None:
            _kill(proc)
    return out, err, proc.returncode


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
