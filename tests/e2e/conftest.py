"""The running system for e2e tests: all four services as processes on real infrastructure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import Stack, free_port

API_KEY = "e2e-test-key-0123456789"


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Extra settings for the services; a test module overrides this fixture to add some."""
    return {}


def e2e_env(service_env: dict, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The services' environment: real endpoints, ``extra``, free ports, the e2e API key."""
    return {
        **service_env,
        **extra,
        "MPR_ENV": "test",
        "LOG_LEVEL": "INFO",
        "MPR_API_KEYS": f"e2e:{API_KEY}",
        "GATEWAY_PORT": str(free_port()),
        "NOTIFIER_PORT": str(free_port()),
        "TRANSCODER_WORK_DIR": str(tmp_path / "work"),
    }


@pytest.fixture
def stack(service_env: dict, stack_env: dict, tmp_path: Path, request) -> Iterator[Stack]:
    env = e2e_env(service_env, tmp_path, **stack_env)
    stack = Stack(env=env, log_dir=tmp_path / "logs")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is None or failed.failed:
            print(stack.all_logs())


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as client:
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
