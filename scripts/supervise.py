"""Run a Procfile's processes in the foreground like compose or Kubernetes would keep them.

    python scripts/supervise.py [-f Procfile.dev] [-c transcoder=3] [--grace 8] [name ...]

A process that exits is restarted after a backoff (1 s, doubling, at most 30 s; back to 1 s
once it has run 30 s), with a log line; the others keep running. SIGINT, SIGTERM or SIGHUP
stops everything: SIGTERM to each service process alone, so that a transcoder can hand its
job back before its FFmpeg children are touched; after the grace (or once it exits), SIGTERM
to what is left of its process group, then SIGKILL. Every line a process prints is prefixed
with its name (honcho's format: ``12:00:00 transcoder.2 | ...``), and each replica gets its
own PORT: base (PORT, default 5000) + 100 per Procfile line + 1 per replica.

Why our own, stdlib only, and not a package: honcho (which ran `make dev` before) stops every
process when one exits and cannot restart. supervisord restarts a process that had been
running at once, every time, with no backoff (its backoff only covers failed starts, and it
gives up after startretries); it stops with one signal to the process or to the whole group,
then SIGKILL, so FFmpeg would get SIGTERM together with the transcoder; and it writes
unprefixed logs through a daemon with a config file and a control socket. circus brings
ZeroMQ and a daemon for the same gaps. What compose and Kubernetes do here fits in this file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
SYSTEM = "system"


@dataclass(frozen=True)
class Spec:
    """One process to keep running: a Procfile entry's replica."""

    name: str
    command: str
    port: int
    colour: str


def parse_procfile(text: str) -> dict[str, str]:
    """``name: command`` lines in order; blank lines and ``#`` comments skipped."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().isidentifier() or not command.strip():
            raise ValueError(f"Procfile line {number} is not 'name: command': {raw!r}")
        entries[name.strip()] = command.strip()
    return entries


def expand(
    entries: dict[str, str], concurrency: dict[str, int], base_port: int, only: Sequence[str] = ()
) -> list[Spec]:
    """The replicas to run; ports follow the Procfile line, whichever entries are chosen."""
    unknown = sorted(set(only) - set(entries))
    if unknown:
        raise ValueError(f"not in the Procfile: {', '.join(unknown)}")
    specs = []
    for line, (name, command) in enumerate(entries.items()):
        if only and name not in only:
            continue
        for replica in range(concurrency.get(name, 1)):
            colour = COLOURS[len(specs) % len(COLOURS)]
            specs.append(
                Spec(f"{name}.{replica + 1}", command, base_port + 100 * line + replica, colour)
            )
    return specs


@dataclass
class Backoff:
    """Delay before a restart: doubles per crash up to ``cap``, reset by a healthy run."""

    first: float = 1.0
    cap: float = 30.0
    healthy_after: float = 30.0
    crashes: int = 0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.healthy_after:
            self.crashes = 0
        self.crashes += 1
        return min(self.cap, self.first * 2 ** (self.crashes - 1))


class Printer:
    """Prefixed, optionally coloured lines on stdout: ``HH:MM:SS name | text``."""

    def __init__(self, names: Sequence[str], colour: bool) -> None:
        self.width = max(len(n) for n in (*names, SYSTEM))
        self.colour = colour

    def line(self, name: str, text: str, colour: str = "0") -> None:
        prefix = f"{time.strftime('%H:%M:%S')} {name:<{self.width}} |"
        if self.colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        sys.stdout.write(f"{prefix} {text}\n")
        sys.stdout.flush()

    def system(self, text: str) -> None:
        self.line(SYSTEM, text, "1")


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def send(pid: int, sig: int, group: bool = False) -> bool:
    """Signal a process (or its group); False if there is none left."""
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except ProcessLookupError:
        return False
    return True


async def group_gone(pgid: int, seconds: float) -> bool:
    """Wait until no process is left in the group, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while send(pgid, 0, group=True):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def first_of(*events: asyncio.Event, seconds: float | None = None) -> None:
    """Until one of the events is set, at most ``seconds`` (None: no limit)."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


class Output(asyncio.SubprocessProtocol):
    """A process's output, line by line, to ``emit``; events for its exit and closed pipe.

    Its own protocol rather than asyncio's Process: Process.wait() also waits for the pipe
    to close, which a child (FFmpeg) that outlives the service keeps open.
    """

    LONGEST_LINE = 1024 * 1024

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self.emit = emit
        self.pending = b""
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        if len(self.pending) > self.LONGEST_LINE:
            lines, self.pending = [*lines, self.pending], b""
        for line in lines:
            self.emit(line)

    def process_exited(self) -> None:
        self.exited.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending:
            self.emit(self.pending)
        self.closed.set()


@dataclass
class Timings:
    grace: float = 10.0  # SIGTERM to the service → SIGTERM to its group
    kill_after: float = 5.0  # SIGTERM to the group → SIGKILL to the group


class Slot:
    """One replica: started, watched, restarted after a crash, stopped on request."""

    def __init__(self, spec: Spec, printer: Printer, timings: Timings, backoff: Backoff) -> None:
        self.spec, self.printer, self.timings, self.backoff = spec, printer, timings, backoff
        self.stopping = asyncio.Event()
        self.hurry = asyncio.Event()  # a second stop signal: no more grace

    def log(self, text: str) -> None:
        self.printer.system(f"{self.spec.name} {text}")

    def emit(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip("\r")
        self.printer.line(self.spec.name, text, self.spec.colour)

    async def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                outcome = await self.run_once()
            except Exception as exc:  # one slot's trouble must not stop the others
                outcome = f"failed ({exc!r})"
            if self.stopping.is_set():
                return
            ran_for = time.monotonic() - started
            delay = self.backoff.next_delay(ran_for)
            self.log(
                f"{outcome} after {ran_for:.1f} s; restarting in {delay:g} s "
                f"(restart {self.backoff.crashes} in a row)"
            )
            await first_of(self.stopping, seconds=delay)

    async def run_once(self) -> str:
        """Start the process; return once it and its group are gone: how it ended."""
        transport, output = await asyncio.get_running_loop().subprocess_exec(
            lambda: Output(self.emit),
            "/bin/sh",
            "-c",
            self.spec.command,
            env={**os.environ, "PORT": str(self.spec.port)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own group and session: a terminal's Ctrl-C reaches only this supervisor,
            # which decides who is signalled when (FFmpeg children last).
            start_new_session=True,
        )
        pid = transport.get_pid()
        self.log(f"started (pid {pid}, PORT {self.spec.port})")
        try:
            await first_of(output.exited, self.stopping)
            if not output.exited.is_set():
                await self.stop_service(pid, output)
            outcome = describe_exit(transport.get_returncode())
            if self.stopping.is_set():
                self.log(f"stopped: {outcome}")
            await self.end_group(pid)
            await first_of(output.closed, seconds=2)  # its group is gone: so is the pipe
        finally:
            transport.close()
        return outcome

    async def stop_service(self, pid: int, output: Output) -> None:
        """SIGTERM to the service process alone, then its grace (cut short by a second signal)."""
        send(pid, signal.SIGTERM)
        sent = time.monotonic()
        await first_of(output.exited, self.hurry, seconds=self.timings.grace)
        waited = time.monotonic() - sent
        if not output.exited.is_set():
            self.log(f"still running {waited:.1f} s after SIGTERM")

    async def end_group(self, pgid: int) -> None:
        """What is left of the process group: SIGTERM, then SIGKILL after ``kill_after``."""
        if not send(pgid, signal.SIGTERM, group=True):
            return
        self.log(f"SIGTERM to what is left of process group {pgid}")
        patience = 0 if self.hurry.is_set() else self.timings.kill_after
        if await group_gone(pgid, patience):
            return
        self.log(f"SIGKILL to process group {pgid}")
        send(pgid, signal.SIGKILL, group=True)
        if not await group_gone(pgid, 5):
            self.log(f"process group {pgid} outlived SIGKILL (zombies nobody reaps?)")


class Supervisor:
    """Every slot at once; the first stop signal stops them all, a second one hurries them."""

    def __init__(self, specs: Sequence[Spec], timings: Timings, colour: bool) -> None:
        self.printer = Printer([s.name for s in specs], colour)
        self.slots = [Slot(s, self.printer, timings, Backoff()) for s in specs]
        self.timings = timings
        self.received: list[int] = []

    def on_signal(self, sig: int) -> None:
        self.received.append(sig)
        name = signal.Signals(sig).name
        if len(self.received) == 1:
            self.printer.system(
                f"{name}: SIGTERM to every service, then to their process groups "
                f"after {self.timings.grace:g} s"
            )
            for slot in self.slots:
                slot.stopping.set()
        else:
            self.printer.system(f"{name} again: no more grace")
            for slot in self.slots:
                slot.hurry.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)
        await asyncio.gather(*(slot.run() for slot in self.slots))
        self.printer.system("all stopped")
        return 128 + self.received[0]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--procfile", type=Path, default=Path("Procfile.dev"))
    parser.add_argument(
        "-c", "--concurrency", action="append", default=[], metavar="NAME=N", help="replicas"
    )
    parser.add_argument(
        "--grace", type=float, default=Timings.grace, help="seconds from SIGTERM to the group's"
    )
    parser.add_argument("names", nargs="*", help="Procfile entries to run (default: all)")
    return parser.parse_args(argv)


def concurrency(pairs: Sequence[str]) -> dict[str, int]:
    counts = {}
    for pair in pairs:
        name, _, number = pair.partition("=")
        if not number.isdigit() or int(number) < 1:
            raise ValueError(f"-c wants NAME=N with N ≥ 1, got {pair!r}")
        counts[name] = int(number)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        entries = parse_procfile(args.procfile.read_text())
        base_port = int(os.environ.get("PORT") or 5000)
        specs = expand(entries, concurrency(args.concurrency), base_port, args.names)
        if not specs:
            raise ValueError(f"nothing to run in {args.procfile}")
    except (OSError, ValueError) as exc:
        print(f"supervise: {exc}", file=sys.stderr)
        return 2
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return asyncio.run(Supervisor(specs, Timings(grace=args.grace), colour).run())


if __name__ == "__main__":
    sys.exit(main())
