"""services/*/Dockerfile, read with Docker's own parser (the `dockerfile` package)."""

from __future__ import annotations

import fnmatch
import tomllib

import pytest

from tests.unit.deploy.support import ROOT

dockerfile = pytest.importorskip(
    "dockerfile", reason="the `dockerfile` parser has no wheel for this platform (dev dependency)"
)

SERVICES = ("gateway", "catalog", "transcoder", "notifier")
# What each image must set so that its server is reachable from outside the container.
LISTEN = {
    "gateway": {"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "8000"},
    "notifier": {"NOTIFIER_HOST": "0.0.0.0", "NOTIFIER_PORT": "8001"},
    "catalog": {"HEALTH_HOST": "0.0.0.0", "HEALTH_PORT": "8080"},
    "transcoder": {"HEALTH_HOST": "0.0.0.0", "HEALTH_PORT": "8080", "TRANSCODER_WORK_DIR": "/work"},
}


def stages(service: str) -> dict[str, list[dockerfile.Command]]:
    """Instructions per build stage, by stage name."""
    result: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] | None = None
    for command in dockerfile.parse_file(str(ROOT / "services" / service / "Dockerfile")):
        if command.cmd == "FROM":
            current = result.setdefault(command.value[-1], [command])
        elif current is not None:
            current.append(command)
    return result


def workspace_members() -> list[str]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return sorted(
        path.parent.relative_to(ROOT).as_posix()
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for path in ROOT.glob(f"{pattern}/pyproject.toml")
    )


def env_of(commands: list[dockerfile.Command]) -> dict[str, str]:
    env: dict[str, str] = {}
    for command in commands:
        if command.cmd == "ENV":
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def dockerignore_excludes(path: str) -> bool:
    """.dockerignore, simplified: enough for the top-level paths the Dockerfiles copy."""
    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        pattern = pattern.removeprefix("**/")
        parts = path.rstrip("/").split("/")
        hit = any(
            fnmatch.fnmatch("/".join(parts[i:j]), pattern)
            for i in range(len(parts))
            for j in range(i + 1, len(parts) + 1)
        )
        if hit:
            excluded = not negate
    return excluded


@pytest.mark.parametrize("service", SERVICES)
def test_builder_installs_only_this_service_from_the_lock(service) -> None:
    builder = stages(service)["builder"]
    runs = [c.value[0] for c in builder if c.cmd == "RUN"]
    assert runs == [
        f"uv sync --frozen --no-dev --package mpr-{service} --no-install-workspace --no-editable",
        f"uv sync --frozen --no-dev --package mpr-{service} --no-editable",
    ]
    copies = [c.value[:-1] for c in builder if c.cmd == "COPY" and not c.flags]
    sources = [src for values in copies for src in values]
    # uv reads the whole workspace: every member's pyproject.toml, copied before the first sync.
    first_sync = next(i for i, c in enumerate(builder) if c.cmd == "RUN")
    early = {src for c in builder[:first_sync] if c.cmd == "COPY" for src in c.value[:-1]}
    assert {"pyproject.toml", "uv.lock"} | {
        f"{m}/pyproject.toml" for m in workspace_members()
    } <= early
    # Only this service's sources and the shared package.
    assert {s for s in sources if s.endswith("/")} == {"shared/", f"services/{service}/"}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not dockerignore_excludes(source), f"{source} is excluded by .dockerignore"
    assert env_of(builder)["UV_PROJECT_ENVIRONMENT"] == "/app/.venv"


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_is_slim_non_root_and_listens_outside(service) -> None:
    all_stages = stages(service)
    runtime = all_stages["runtime"]
    assert list(all_stages)[-1] == "runtime", "the runtime stage must be the last (the default)"
    assert runtime[0].value[0] == "${PYTHON_IMAGE}"
    args = [
        c.value[0]
        for c in dockerfile.parse_file(str(ROOT / "services" / service / "Dockerfile"))
        if c.cmd == "ARG"
    ]
    assert "PYTHON_IMAGE=python:3.11-slim" in args
    (copy,) = [c for c in runtime if c.cmd == "COPY"]
    assert copy.flags == ("--from=builder",) and copy.value == ("/app/.venv", "/app/.venv")
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users == ["10001:10001"]
    env = env_of(runtime)
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert LISTEN[service].items() <= env.items()
    assert [c.value for c in runtime if c.cmd == "CMD"] == [("python", "-m", f"mpr_{service}")]
    assert [c for c in runtime if c.cmd == "HEALTHCHECK"], "no HEALTHCHECK"
    installs_ffmpeg = any(
        c.cmd == "RUN" and "apt-get install -y --no-install-recommends ffmpeg" in c.value[0]
        for c in runtime
    )
    assert installs_ffmpeg is (service in {"catalog", "transcoder"})
