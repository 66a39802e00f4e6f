"""Starts cfn-lint's subprocess as soon as collection ends, when a test of test_aws.py runs."""

from __future__ import annotations

import pytest

from tests.unit.deploy import cfn


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly and any(
        item.path == cfn.TESTS for item in session.items
    ):
        cfn.Background.start()
