"""Stopping the server ends open SSE streams properly (clients then reconnect elsewhere)."""

from __future__ import annotations

import asyncio

import httpx
from httpx_sse import aconnect_sse

from mpr_notifier.api.app import create_app
from mpr_notifier.bootstrap import bootstrap
from tests.integration.notifier.conftest import (
    API_KEY,
    free_port,
    notifier_settings,
    serve,
)


async def test_shutdown_completes_open_streams(amqp_url: str, notifier_database: str) -> None:
    port = free_port()
    app = create_app(bootstrap(notifier_settings(amqp_url, notifier_database, port)))
    # With uvicorn's own SIGTERM handler installed, as `python -m mpr_notifier` runs it.
    server, task = await serve(app, port, signals=True)
    url = f"http://127.0.0.1:{port}/api/events"
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http,
        aconnect_sse(http, "GET", url, headers={"X-API-Key": API_KEY}) as source,
    ):
        assert app.state.container.hub.clients == 1
        server.should_exit = True  # what SIGTERM does
        async with asyncio.timeout(30):
            # A stream cut off mid-response would raise RemoteProtocolError here.
            received = [sse async for sse in source.aiter_sse()]
    assert received == []
    await asyncio.wait_for(task, 30)
    assert app.state.container.hub.clients == 0
