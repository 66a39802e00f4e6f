"""The test harness in real pytest runs: the tier check, the skip line, a clean environment."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.env import clean_environ

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import pytest
from tests.support import tiers

def pytest_configure(config):
    tiers.register(config)
"""
# One file per tier; the integration tier's tests skip as if an endpoint were missing.
TIER_FILES = {
    "test_unit.py": "pytestmark = pytest.mark.unit\ndef test_adds():\n    assert 1 + 1 == 2\n",
    "test_service.py": "pytestmark = pytest.mark.service\ndef test_runs():\n    assert True\n",
    "test_e2e.py": "pytestmark = pytest.mark.e2e\ndef test_runs():\n    assert True\n",
    "test_integration.py": textwrap.dedent(
        """
        pytestmark = pytest.mark.integration
        @pytest.fixture
        def endpoint():
            pytest.skip("RabbitMQ not reachable")
        def test_one(endpoint):
            pass
        def test_two(endpoint):
            pass
        """
    ),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small test suite laid out like ours, with the suite's tier check installed."""
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\ntestpaths = suite\nmarkers =\n    unit\n    service\n    integration\n    e2e\n"
    )
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "conftest.py").write_text(CONFTEST)
    for name, body in TIER_FILES.items():
        (tmp_path / "suite" / name).write_text("import pytest\n" + body)
    return tmp_path


def _pytest(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess, without the installed plugins (seconds each on a busy machine)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environ(
            PYTHONPATH=str(ROOT), NO_COLOR="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **env
        ),
    )


def test_a_tier_that_skipped_everything_fails_the_run(project):
    result = _pytest(project)

    assert result.returncode == 1, result.stdout
    assert "2 skipped" in result.stdout
    assert "skipped 2: 2 x RabbitMQ not reachable" in result.stdout
    assert "tier check FAILED: every selected integration test (2) was skipped" in result.stdout


def test_a_tier_missing_from_a_full_run_fails_it(project):
    (project / "suite" / "test_e2e.py").unlink()
    (project / "suite" / "test_integration.py").write_text(
        "import pytest\npytestmark = pytest.mark.integration\ndef test_ok():\n    pass\n"
    )

    result = _pytest(project)

    assert result.returncode == 1, result.stdout
    assert "tier check FAILED: no e2e test was collected" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("-m", "unit"),
        ("-m", "not integration"),
        ("-k", "two or adds"),
        ("suite/test_integration.py",),
    ],
    ids=["one tier", "tiers deselected", "keyword", "named file"],
)
def test_a_run_narrowed_on_purpose_is_judged_on_what_it_kept_whole(project, args):
    result = _pytest(project, *args)

    assert result.returncode == 0, result.stdout
    assert "tier check FAILED" not in result.stdout


def test_exported_mpr_variables_do_not_reach_the_tests():
    """The acceptance of a fresh clone's `make test` with these two exported in the shell."""
    result = _pytest(
        ROOT,
        "-q",
        "tests/unit/test_harness.py",
        "-k",
        "sees_none or leaves_exported",
        MPR_API_KEYS="x:y",
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/x",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
