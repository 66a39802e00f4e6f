"""One health and readiness contract for every service, and a small server to offer it.

- ``GET /api/health`` (liveness, no I/O): ``{"service": ..., "status": "ok"}``.
- ``GET /api/ready``: ``{"service", "status": "ready" | "degraded" | "unavailable", "checks":
  {"<dependency>": {"ok", "critical", "detail"}}}``; 200 when ready or degraded, 503 only when
  a critical check fails. A non-critical dependency being down leaves the service doing useful
  work (the gateway accepts jobs into its outbox while RabbitMQ is away), so Kubernetes must
  keep routing to it. https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
- ``GET /metrics``: Prometheus text.

FastAPI apps mount ``Health.routes()`` (or call ``liveness``/``readiness`` from their own
documented routes); headless services run ``serving(health.app(), host, port)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_SECONDS = 3.0
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class Dependency:
    """One readiness check; a failing ``critical`` one makes the service unavailable."""

    name: str
    check: Check
    critical: bool
    timeout: float = CHECK_TIMEOUT_SECONDS


class Liveness(BaseModel):
    service: str = Field(description="The service that answers.")
    status: Literal["ok"] = "ok"


class CheckResult(BaseModel):
    ok: bool = Field(description="The dependency answered in time.")
    critical: bool = Field(description="Without it the service cannot do its work.")
    detail: str = Field(description="'ok', or why not.")


class Readiness(BaseModel):
    service: str = Field(description="The service that answers.")
    status: Literal["ready", "degraded", "unavailable"] = Field(
        description="ready: every check passed; degraded: a non-critical one failed (still "
        "200); unavailable: a critical one failed (503)."
    )
    checks: dict[str, CheckResult] = Field(description="Every dependency, by name.")

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unavailable" else 200


async def run_check(dependency: Dependency) -> CheckResult:
    """Run one check within its timeout; never raises."""
    try:
        async with asyncio.timeout(dependency.timeout):
            await dependency.check()
    except TimeoutError:
        detail = f"no answer within {dependency.timeout:g}s"
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS]
    else:
        return CheckResult(ok=True, critical=dependency.critical, detail="ok")
    return CheckResult(ok=False, critical=dependency.critical, detail=detail)


def overall(results: Sequence[CheckResult]) -> Literal["ready", "degraded", "unavailable"]:
    """Unavailable when a critical check failed, degraded when another did, else ready."""
    if any(not r.ok and r.critical for r in results):
        return "unavailable"
    return "ready" if all(r.ok for r in results) else "degraded"


class Health:
    """A service's health contract: its name, its dependencies and its metrics."""

    def __init__(
        self,
        service: str,
        dependencies: Sequence[Dependency],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.service = service
        self.dependencies = tuple(dependencies)
        self.registry = registry

    def liveness(self) -> Liveness:
        return Liveness(service=self.service)

    async def readiness(self) -> Readiness:
        """Every dependency checked at once, each within its own timeout."""
        results = await asyncio.gather(*(run_check(d) for d in self.dependencies))
        checks = {d.name: r for d, r in zip(self.dependencies, results, strict=True)}
        return Readiness(service=self.service, status=overall(results), checks=checks)

    def metrics(self) -> bytes:
        return generate_latest(self.registry) if self.registry is not None else b""

    def routes(self) -> list[BaseRoute]:
        """GET /api/health, /api/ready and /metrics, for a FastAPI or Starlette app."""

        async def health(_: Request) -> JSONResponse:
            return JSONResponse(self.liveness().model_dump())

        async def ready(_: Request) -> JSONResponse:
            readiness = await self.readiness()
            return JSONResponse(readiness.model_dump(), status_code=readiness.http_status)

        async def metrics(_: Request) -> Response:
            return Response(self.metrics(), media_type=CONTENT_TYPE_LATEST)

        return [
            Route("/api/health", health, methods=["GET"]),
            Route("/api/ready", ready, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]

    def app(self) -> Starlette:
        """The three routes as an app of their own (for ``serving``)."""
        return Starlette(routes=self.routes())


class _Server(uvicorn.Server):
    """uvicorn without signal handlers of its own: the service's runner owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` in this event loop while the block runs; yields the port it listens on."""
    # Bound here, so a taken port is an OSError, not uvicorn's sys.exit (which would escape
    # the event loop and stop the service).
    listener = _listen(host, port)
    config = uvicorn.Config(app, log_config=None, lifespan="off")
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name=f"http-{host}:{port}")
    try:
        while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.02)
        if task.done():
            task.result()  # the error that stopped it
        yield int(listener.getsockname()[1])
    finally:
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=5.0)  # open connections close first
        if not done:
            task.cancel()
        listener.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise OSError(exc.errno, f"could not serve HTTP on {host}:{port}: {exc.strerror}") from exc
