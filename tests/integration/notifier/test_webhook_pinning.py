"""DNS rebinding: the webhook goes to the address the SSRF check saw, over real sockets and TLS.

The resolver answers 127.0.0.1 first and 127.0.0.2 on any later lookup (a name with TTL 0
that an attacker points elsewhere after the check). A receiver listens on each address with a
certificate for the host name only, so the request reaches 127.0.0.1 and TLS verifies there only
if the connection was pinned and the SNI name and Host header stayed the URL's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mpr_notifier.adapters.webhooks import HttpWebhookSender
from mpr_notifier.settings import DEV_WEBHOOK_SECRET
from tests.integration.notifier.conftest import free_port

HOST = "hooks.example.test"
CHECKED, REBOUND = "127.0.0.1", "127.0.0.2"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for HOST only (no IP address in it)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subject = ["-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert), *subject],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def receivers(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[int, dict]]:
    """HTTPS receivers on both addresses and one port; requests seen, by address."""
    port, seen = free_port(), {CHECKED: [], REBOUND: []}
    servers = [await _serve(address, port, certificate, seen[address]) for address in seen]
    yield port, seen
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _serve(address: str, port: int, certificate: tuple[Path, Path], seen: list) -> tuple:
    async def hook(request: Request) -> Response:
        seen.append((request.headers["host"], json.loads(await request.body())))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    cert, key = certificate
    config = uvicorn.Config(
        app, host=address, port=port, log_config=None, ssl_certfile=cert, ssl_keyfile=key
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # the test process keeps its handlers
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    return server, task


async def test_webhook_connects_to_the_checked_address_and_verifies_the_name(
    receivers: tuple[int, dict], certificate: tuple[Path, Path]
) -> None:
    port, seen = receivers
    answers = iter([[CHECKED]])
    lookups: list[str] = []

    async def rebinding(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return next(answers, [REBOUND])

    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    async with httpx.AsyncClient(verify=trusted, follow_redirects=False) as client:
        sender = HttpWebhookSender(
            client, DEV_WEBHOOK_SECRET, max_attempts=1, allow_private=True, resolver=rebinding
        )
        await sender.send(f"https://{HOST}:{port}/hook", "msg-pinned", '{"type": "JobCompleted"}')
    assert seen[CHECKED] == [(f"{HOST}:{port}", {"type": "JobCompleted"})]
    assert seen[REBOUND] == []
    assert lookups == [HOST]
