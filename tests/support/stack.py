"""Run the whole system as separate processes, as `make dev` does, for e2e tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.env import clean_environ

SERVICES = ("gateway", "catalog", "transcoder", "notifier")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """The four services (plus migrations) running against real infrastructure."""

    env: dict[str, str]
    log_dir: Path
    transcoders: int = 1
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    @property
    def notifier_url(self) -> str:
        return f"http://127.0.0.1:{self.env['NOTIFIER_PORT']}"

    def start(self) -> Stack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run(
            [sys.executable, "-m", "mpr_shared.db", "upgrade"],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if migrate.returncode:
            raise RuntimeError(f"migrations failed:\n{migrate.stderr[-3000:]}")
        for service in SERVICES:
            for index in range(self.transcoders if service == "transcoder" else 1):
                self.spawn(service, index)
        self.wait_ready()
        return self

    def spawn(self, service: str, index: int = 0) -> subprocess.Popen:
        name = service if index == 0 else f"{service}-{index}"
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", f"mpr_{service}"],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def _env(self) -> dict[str, str]:
        """This process's environment less any MPR variable a developer exported, then ours."""
        return clean_environ(PYTHONUNBUFFERED="1", **self.env)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = {self.gateway_url, self.notifier_url}
        while pending and time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.logs(name)}")
            for url in list(pending):
                try:
                    if httpx.get(f"{url}/api/ready", timeout=2).status_code == 200:
                        pending.discard(url)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        if pending:
            raise RuntimeError(f"not ready: {pending}\n{self.all_logs()}")
        time.sleep(1.0)  # let the headless workers finish declaring their consumers

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                print(f"{name} did not stop on SIGTERM; killed")

    def logs(self, name: str, tail: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def all_logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.logs(n)}" for n in self.procs)
