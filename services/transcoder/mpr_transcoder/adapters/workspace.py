"""Per-replica scratch directories under TRANSCODER_WORK_DIR.

Each replica works in ``<root>/<instance>/`` and holds an exclusive ``flock`` on a lock
file inside it for its whole life. The kernel drops the lock when the process dies, even by
SIGKILL, so at startup any sibling whose lock can be taken belongs to a dead replica and is
removed with whatever partial files it left.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import socket
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = ".replica.lock"


def new_instance_id() -> str:
    """hostname-pid-random: unique across hosts, restarts and recycled pids."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return f"{host[:40] or 'host'}-{os.getpid()}-{secrets.token_hex(3)}"


class Workspace:
    """This replica's scratch directory, locked for as long as it is open."""

    def __init__(self, root: Path, instance: str) -> None:
        self.root = root
        self.path = root / instance
        self._fd: int | None = None

    def open(self) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        swept = sweep_stale(self.root)
        if swept:
            log.info("removed %d work dirs left by dead replicas", swept)
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd
        return self

    def close(self) -> None:
        if self._fd is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)
            self._fd = None


def sweep_stale(root: Path) -> int:
    """Remove every replica dir under ``root`` whose owner is gone; returns how many."""
    removed = 0
    for entry in root.iterdir() if root.is_dir() else ():
        if not entry.is_dir() or entry.is_symlink():
            continue
        lock = entry / LOCK_NAME
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live replica holds it
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed
