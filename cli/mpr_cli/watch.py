"""Follow a job to its end: the notifier's SSE stream for a live bar, polling when it is away."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from mpr_cli.api import Api
from mpr_cli.output import Out, seconds

TERMINAL = frozenset({"completed", "failed", "cancelled"})
FINISHED_EVENTS = frozenset({"job.completed", "job.failed", "job.cancelled"})
POLL_SECONDS = 1.0
# With SSE, the job is also re-read this often: a stream that stays open but carries nothing
# (a notifier cut off from the broker) must not hold the watcher forever.
RECHECK_SECONDS = 10.0
# The notifier's event may arrive before the gateway has applied the same event to the job.
SETTLE_SECONDS = 0.2
SSE_TIMEOUT = httpx.Timeout(5.0, read=None)


class StreamLost(Exception):
    """The SSE stream could not be opened, or ended before the job did."""


def terminal(job: dict[str, Any]) -> bool:
    return job.get("status") in TERMINAL


class JobBar:
    """The live line: percent, fps, speed and ETA (drawn only on a terminal)."""

    def __init__(self, out: Out, job_id: str) -> None:
        self.out = out
        self.job_id = job_id
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[fps]}"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=out.err,
            disable=not out.err.is_terminal,
        )
        self.task: TaskID | None = None
        self.status: str | None = None

    def __enter__(self) -> JobBar:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def show(self, job: dict[str, Any]) -> None:
        """Redraw from a job object (GET /api/jobs/{id})."""
        self._status(job)
        self._draw(job.get("progress"), job.get("fps"), job.get("speed"), job.get("eta_seconds"))

    def event(self, event: str, data: dict[str, Any]) -> None:
        """Redraw from an SSE event."""
        if event == "job.progress":
            self._status({**data, "status": "running"})
            self._draw(
                data.get("percent"), data.get("fps"), data.get("speed"), data.get("eta_seconds")
            )
        elif event == "job.started":
            self._status({**data, "status": "running"})

    def _status(self, job: dict[str, Any]) -> None:
        status = str(job.get("status"))
        if status != self.status:
            self.status = status
            worker = f" on {job['worker']}" if job.get("worker") and status == "running" else ""
            self.out.note(f"job {self.job_id} {status}{worker}")
        if self.task is None:
            self.task = self.progress.add_task(status, total=100, fps="", speed="", eta="-")
        self.progress.update(self.task, description=status)

    def _draw(self, percent: Any, fps: Any, speed: Any, eta: Any) -> None:
        if self.task is None:
            return
        self.progress.update(
            self.task,
            completed=float(percent or 0),
            fps=f"{fps:.0f} fps" if isinstance(fps, int | float) else "",
            speed=f"{speed:.2f}x" if isinstance(speed, int | float) else "",
            eta=seconds(eta),
        )


def watch(api: Api, out: Out, job_id: str, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job once it has finished, as GET /api/jobs/{id} returns it."""
    job = job or api.get(f"/api/jobs/{job_id}")
    if terminal(job):
        return job
    with JobBar(out, job_id) as bar:
        bar.show(job)
        try:
            return follow(api, job_id, bar)
        except StreamLost as exc:
            out.note(f"live events unavailable ({exc}); polling the job every {POLL_SECONDS:g} s")
            return poll(api, job_id, bar)


def poll(api: Api, job_id: str, bar: JobBar) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = api.get(f"/api/jobs/{job_id}")
        bar.show(job)
        if terminal(job):
            return job
        time.sleep(POLL_SECONDS)


def follow(api: Api, job_id: str, bar: JobBar) -> dict[str, Any]:
    """Draw the job's SSE events until one says it finished; StreamLost if the stream fails."""
    url = f"{api.events_url()}/api/events"
    with events(api, url, job_id) as inbox:
        # Subscribed: re-read the job, so nothing between the first read and now is missed.
        job: dict[str, Any] = api.get(f"/api/jobs/{job_id}")
        bar.show(job)
        while not terminal(job):
            try:
                item = inbox.get(timeout=RECHECK_SECONDS)
            except queue.Empty:
                job = api.get(f"/api/jobs/{job_id}")
                bar.show(job)
                continue
            if isinstance(item, BaseException) or item is None:
                raise StreamLost(f"the event stream from {url} ended: {item or 'closed'}")
            data = json.loads(item.data) if item.data else {}
            bar.event(item.event, data)
            if item.event in FINISHED_EVENTS or item.event in ("gap", "overflow"):
                job = settle(api, job_id)
                bar.show(job)
        return job


def settle(api: Api, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The job after an event said it finished: the gateway applies that event on its own."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/api/jobs/{job_id}")
        if terminal(job) or time.monotonic() > deadline:
            return job
        time.sleep(SETTLE_SECONDS)


Inbox = queue.Queue[ServerSentEvent | BaseException | None]


@contextmanager
def events(api: Api, url: str, job_id: str) -> Iterator[Inbox]:
    """The job's events, read by a thread into a queue (so Ctrl-C and re-checks stay prompt)."""
    with ExitStack() as stack:
        try:
            source = stack.enter_context(
                connect_sse(
                    api.plain,
                    "GET",
                    url,
                    params={"job_id": job_id},
                    headers={"X-API-Key": api.key},
                    timeout=SSE_TIMEOUT,
                )
            )
        except httpx.TransportError as exc:
            raise StreamLost(f"cannot reach {url}: {exc}") from None
        # Closing the response (first on the way out) ends the reader thread's iteration.
        stack.callback(source.response.close)
        if source.response.status_code != 200:
            raise StreamLost(f"{url} answered HTTP {source.response.status_code}")
        inbox: Inbox = queue.Queue()
        reader = threading.Thread(target=_read, args=(source.iter_sse, inbox.put), daemon=True)
        reader.start()
        yield inbox


def _read(
    iterate: Callable[[], Iterator[ServerSentEvent]],
    put: Callable[[ServerSentEvent | BaseException | None], None],
) -> None:
    try:
        for sse in iterate():
            put(sse)
    except Exception as exc:  # the main thread decides what a broken stream means
        put(exc)
        return
    put(None)
