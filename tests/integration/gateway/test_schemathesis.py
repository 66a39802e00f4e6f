"""Schemathesis against /openapi.json: no 5xx and no response that breaks the schema.

The gateway runs under a real uvicorn on loopback (its own thread and event loop) with the
real RabbitMQ vhost, S3 and a SQLite database; a stand-in catalog answers scans on the broker.
The number of examples per operation is bounded so the run stays well under a minute.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
import schemathesis
import uvicorn
from faststream.rabbit import RabbitBroker
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mpr_gateway.api.app import create_app
from mpr_gateway.bootstrap import bootstrap
from mpr_shared.contracts import ScanBucket, ScanResult
from mpr_shared.db.migrate import upgrade
from mpr_shared.topology import CATALOG_SCAN, COMMANDS
from tests.integration.gateway.conftest import AUTH, gateway_settings

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class GatewayServer(threading.Thread):
    """uvicorn serving the gateway, plus a fake catalog, in a background event loop."""

    def __init__(self, settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(bootstrap(settings)),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="on",
            )
        )

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        catalog = RabbitBroker(self.settings.amqp_url.get_secret_value())

        @catalog.subscriber(CATALOG_SCAN, COMMANDS)
        async def scan(command: ScanBucket) -> dict:
            return ScanResult(found=1, registered=1, skipped=0, files=[command.prefix]).model_dump()

        await catalog.start()
        try:
            await self.server.serve()
        finally:
            await catalog.stop()

    def wait_started(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not self.server.started:
            if time.monotonic() > deadline or not self.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.05)


@pytest.fixture
def base_url(service_env: dict, tmp_path: Path):
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'schemathesis.db'}"
    upgrade(database_url)
    server = GatewayServer(gateway_settings(service_env, database_url))
    server.start()
    try:
        server.wait_started()
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.server.should_exit = True
        server.join(timeout=30)


def test_openapi_schema_holds_under_generated_requests(base_url: str):
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12  # every REST endpoint is in the schema
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.call_and_validate(base_url=base_url, session=session, headers=AUTH, checks=CHECKS)

        check()
