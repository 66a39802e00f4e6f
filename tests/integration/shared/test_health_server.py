"""The health server headless services run on HEALTH_PORT: real sockets, real uvicorn."""

from __future__ import annotations

import signal
import socket

import httpx
import pytest

from mpr_shared.health import Dependency, Health, serving


async def database() -> None:
    raise ConnectionError("database is down")


async def test_serves_the_contract_and_leaves_signal_handlers_alone():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    health = Health("transcoder", [Dependency("database", database, critical=False)])
    async with serving(health.app(), "127.0.0.1", 0) as port:
        # uvicorn's own handlers would take SIGTERM from the service's graceful drain.
        assert {sig: signal.getsignal(sig) for sig in before} == before
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            live = await client.get("/api/health")
            ready = await client.get("/api/ready")
    assert live.json() == {"service": "transcoder", "status": "ok"}
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    with pytest.raises(httpx.ConnectError):  # stopped with the block
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)


async def test_a_taken_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"could not serve HTTP on 127.0.0.1:{port}"):
            async with serving(Health("catalog", []).app(), "127.0.0.1", port):
                pass
