"""The test harness itself: a clean environment per test, the skip summary, the tier check."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from mpr_gateway.settings import GatewaySettings
from mpr_shared.settings import CommonSettings
from tests.support import env
from tests.support.tiers import TierCounts, skip_summary

# --- environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["DATABASE_URL", "AMQP_URL", "MPR_API_KEYS", "WEBHOOK_SECRET", "HEALTH_PORT", "ACCESS_LOG"],
)
def test_every_services_settings_names_are_cleared(name):
    assert name in env.settings_variables()
    assert env.is_service_variable(name)


@pytest.mark.parametrize(
    ("name", "cleared"),
    [
        ("MPR_SOMETHING_NEW", True),
        ("AWS_PROFILE", True),
        ("PGPASSWORD", True),
        ("TRANSCODERS", True),
        ("MPR_TEST_AMQP_URL", False),
        ("MPR_TEST_NO_DOCKER", False),
        ("PATH", False),
        ("HOME", False),
        ("UV_PROJECT_ENVIRONMENT", False),
    ],
)
def test_families_and_kept_names(name, cleared):
    assert env.is_service_variable(name) is cleared


def test_scrub_clears_what_a_developer_exported_and_keeps_the_rest():
    environ = {
        "PATH": "/usr/bin",
        "MPR_API_KEYS": "me:secret",
        "DATABASE_URL": "postgresql://me@db/prod",
        "MPR_TEST_S3_ENDPOINT": "http://127.0.0.1:9999",
        "AWS_EC2_METADATA_DISABLED": "false",
    }

    removed = env.scrub(environ)

    assert removed == ["AWS_EC2_METADATA_DISABLED", "DATABASE_URL", "MPR_API_KEYS"]
    assert environ == {
        "PATH": "/usr/bin",
        "MPR_TEST_S3_ENDPOINT": "http://127.0.0.1:9999",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_subprocess_environment_leaves_exported_variables_out(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    monkeypatch.setenv("MPR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/t")

    child = env.clean_environ(GATEWAY_PORT="8123")

    assert "DATABASE_URL" not in child
    assert child["MPR_TEST_AMQP_URL"] == "amqp://guest:guest@127.0.0.1:5672/t"
    assert child["GATEWAY_PORT"] == "8123"
    assert child["PATH"] == os.environ["PATH"]


def test_a_test_sees_none_of_the_developers_variables():
    """Run with MPR_API_KEYS and DATABASE_URL exported by tests/integration/test_harness.py."""
    assert env.stray(os.environ) == []
    assert GatewaySettings(_env_file=None).api_key_map == {}
    assert CommonSettings(_env_file=None).async_database_url.startswith("sqlite+aiosqlite:///")


# --- skip summary and tier check -----------------------------------------------------------


def test_skip_summary_is_one_line_most_frequent_reason_first():
    reasons = ["needs a Docker engine", "shellcheck not installed", "needs a Docker engine"]

    assert skip_summary(reasons) == (
        "skipped 3: 2 x needs a Docker engine; 1 x shellcheck not installed"
    )
    assert skip_summary([]) == "skipped: none"


def _counts(selected=(), deselected=(), skipped=()) -> TierCounts:
    return TierCounts(Counter(selected), Counter(deselected), Counter(skipped))


def test_a_tier_whose_every_test_skipped_is_a_problem():
    counts = _counts(
        selected={"unit": 5, "service": 2, "integration": 3, "e2e": 1},
        skipped={"integration": 3, "unit": 1},
    )

    assert counts.problems(full_run=True) == ["every selected integration test (3) was skipped"]


def test_a_tier_with_one_test_that_ran_is_fine():
    counts = _counts(
        selected={"unit": 5, "service": 2, "integration": 3, "e2e": 1},
        skipped={"integration": 2, "e2e": 0},
    )

    assert counts.problems(full_run=True) == []


def test_a_tier_narrowed_on_purpose_is_not_judged():
    counts = _counts(
        selected={"integration": 1},
        deselected={"unit": 5, "service": 2, "integration": 9, "e2e": 1},
        skipped={"integration": 1},
    )

    assert counts.problems(full_run=False) == []


def test_a_tier_missing_from_a_full_run_is_a_problem_and_from_a_narrowed_one_not():
    counts = _counts(selected={"unit": 5, "service": 2, "integration": 3})

    assert counts.problems(full_run=True) == ["no e2e test was collected"]
    assert counts.problems(full_run=False) == []
