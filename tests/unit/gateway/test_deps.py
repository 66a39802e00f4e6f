"""deps.py's aliases carry a FastAPI ``Depends`` and a FastStream ``Context`` each; every
library must keep ignoring the other's marker, or routes and subscribers stop resolving."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from faststream.rabbit import RabbitBroker, TestRabbitBroker

from mpr_gateway.deps import Jobs


async def test_a_route_and_a_subscriber_resolve_the_same_alias() -> None:
    http_jobs, broker_jobs = object(), object()
    app = FastAPI()
    app.state.container = SimpleNamespace(jobs=http_jobs)
    seen: list[object] = []

    @app.get("/probe")
    async def probe(jobs: Jobs) -> bool:
        seen.append(jobs)
        return True

    broker = RabbitBroker()
    broker.context.set_global("container", SimpleNamespace(jobs=broker_jobs))

    @broker.subscriber("probe")
    async def on_probe(body: dict, jobs: Jobs) -> None:
        seen.append(jobs)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/probe")).status_code == 200
    async with TestRabbitBroker(broker) as br:
        await br.publish({}, "probe")
    assert seen == [http_jobs, broker_jobs]
