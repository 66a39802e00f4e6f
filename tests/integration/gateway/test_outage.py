"""Never lose an accepted job: with RabbitMQ unreachable the API still accepts jobs (they wait in
the outbox, whose lag the metrics show) and publishes them once the broker is reachable; scan
answers 503; readiness stays 200 ("degraded"), so Kubernetes keeps the gateway in service."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from functools import partial
from urllib.parse import urlsplit, urlunsplit

from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from mpr_shared.topology import COMMANDS
from tests.integration.gateway.conftest import AUTH, eventually, gateway_settings, running_stack


async def outbox_lag(stack, *, above: float | None = None, equal: float | None = None) -> bool:
    """mpr_gateway_outbox_lag_seconds on /metrics is above (or equal to) the value."""
    metrics = (await stack.client.get("/metrics")).text
    [line] = [m for m in metrics.splitlines() if m.startswith("mpr_gateway_outbox_lag_seconds ")]
    lag = float(line.split()[1])
    return lag > above if above is not None else lag == equal


class TcpProxy:
    """A loopback TCP forwarder we can switch on later, standing in for RabbitMQ coming back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src, dst) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            t = asyncio.create_task(task)
            self._tasks.add(t)


async def test_jobs_accepted_while_rabbitmq_is_down_are_published_when_it_returns(
    service_env, database_url, buckets, amqp_url
):
    real = urlsplit(amqp_url)
    proxy = TcpProxy((real.hostname or "127.0.0.1", real.port or 5672))
    via_proxy = urlunsplit(
        real._replace(netloc=f"{real.username}:{real.password}@127.0.0.1:{proxy.port}")
    )
    settings = gateway_settings(
        service_env, database_url, AMQP_URL=via_proxy, BROKER_STARTUP_WAIT_SECONDS="0.2"
    )
    seen: list[tuple[int | None, dict]] = []
    watcher = RabbitBroker(amqp_url)

    @watcher.subscriber(
        RabbitQueue("test.gateway.outage", auto_delete=True, routing_key="job.run"), COMMANDS
    )
    async def record(body: dict, message: RabbitMessage) -> None:
        seen.append((message.raw_message.priority, body))

    await watcher.start()
    try:
        async for stack in running_stack(settings, buckets):
            await stack.add_asset("o/clip.mp4")
            body = {"source_key": "o/clip.mp4", "kind": "audio", "priority": 6}
            created = await stack.client.post("/api/jobs", json=body, headers=AUTH)
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]

            ready = await stack.client.get("/api/ready")
            assert ready.status_code == 200, ready.text  # it still accepts jobs
            assert ready.json()["status"] == "degraded"
            rabbitmq = ready.json()["checks"]["rabbitmq"]
            assert (rabbitmq["ok"], rabbitmq["critical"]) == (False, False)
            assert ready.json()["checks"]["database"]["ok"] is True
            scan = await stack.client.post("/api/assets/scan", headers=AUTH)
            assert scan.status_code == 503 and int(scan.headers["Retry-After"]) > 0
            assert "broker is unreachable" in scan.json()["error"]["message"]
            pending = await stack.outbox()
            assert {r.message_type for r in pending} == {"ProcessMedia", "JobQueued"}
            assert all(r.published_at is None for r in pending)
            await eventually(partial(outbox_lag, stack, above=0.0))  # the relay saw them wait

            await proxy.start()  # RabbitMQ is back

            async def published(job_id: str = job_id) -> bool:
                return any(b["job_id"] == job_id for _, b in seen)

            await eventually(published, seconds=30)
            [(priority, message)] = [(p, b) for p, b in seen if b["job_id"] == job_id]
            assert priority == 6 and message["attempt"] == 1

            async def all_marked_sent(stack=stack) -> bool:
                # The confirm arrives before the relay's UPDATE commits; wait for both.
                return all(r.published_at is not None for r in await stack.outbox())

            await eventually(all_marked_sent, seconds=30)
            ready = await stack.client.get("/api/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "ready"
            await eventually(partial(outbox_lag, stack, equal=0.0))
    finally:
        await watcher.stop()
        await proxy.stop()
