"""The fakes stand for the ports: mypy checks each fake against its Protocol (fakes.CONFORMS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[3]
FAKES = Path(__file__).with_name("fakes.py")


def test_every_fake_conforms_to_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the config's mypy_path is relative to the repository
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--follow-imports=silent",  # report the fakes, not what they import
            "--strict",
            str(FAKES),
        ]
    )
    assert status == 0, stdout + stderr
