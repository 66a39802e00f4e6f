"""The fakes in fakes.py are what their ports promise: mypy checks each against its Protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[3]
FAKES = Path(__file__).with_name("fakes.py")


def test_every_fake_conforms_to_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # mypy resolves tests.unit.transcoder.fakes from the root
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--follow-imports=silent",
            "--no-error-summary",
            str(FAKES.relative_to(ROOT)),
        ]
    )
    assert status == 0, stdout + stderr


def test_a_fake_that_breaks_its_port_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The check above can fail: a fake whose method takes other arguments is refused.
    broken = tmp_path / "broken_fake.py"
    broken.write_text(
        "from mpr_transcoder.application.ports import JobRows\n"
        "class Rows:\n"
        "    async def get(self, job_id: str) -> None:\n"
        "        return None\n"
        "_rows: JobRows = Rows()\n"
    )
    monkeypatch.chdir(ROOT)
    stdout, _, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--follow-imports=silent", str(broken)]
    )
    assert status == 1 and "Incompatible types in assignment" in stdout
