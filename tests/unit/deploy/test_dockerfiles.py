"""The repository's Dockerfile, read with Docker's own parser (the `dockerfile` package).

`image(target, SERVICE=...)` resolves build arguments and follows each stage back through its
FROM chain, so the tests see what one `docker build --build-arg SERVICE=… [--target …]` builds.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.unit.deploy.support import ROOT

dockerfile = pytest.importorskip(
    "dockerfile", reason="the `dockerfile` parser has no wheel for this platform (dev dependency)"
)

DOCKERFILE = ROOT / "Dockerfile"
SERVICES = ("gateway", "catalog", "transcoder", "notifier")
FFMPEG_SERVICES = {"catalog", "transcoder"}
FFMPEG_INSTALL = "apt-get install -y --no-install-recommends ffmpeg"
# What each image must set so that its server is reachable from outside the container.
LISTEN = {
    "gateway": {"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "8000"},
    "notifier": {"NOTIFIER_HOST": "0.0.0.0", "NOTIFIER_PORT": "8001"},
    "catalog": {"HEALTH_HOST": "0.0.0.0", "HEALTH_PORT": "8080"},
    "transcoder": {"HEALTH_HOST": "0.0.0.0", "HEALTH_PORT": "8080", "TRANSCODER_WORK_DIR": "/work"},
}
LAMBDA_HANDLER = "mpr_transcoder.lambda_handler.handler"
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Image:
    """One build target: its stages (base first) and their instructions, arguments resolved."""

    stages: tuple[str, ...]
    base: str  # the external image the first stage starts from
    commands: tuple[dockerfile.Command, ...]
    args: dict[str, str]

    def values(self, cmd: str) -> list[tuple[str, ...]]:
        return [self.expand(c.value) for c in self.commands if c.cmd == cmd]

    def expand(self, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(substitute(v, self.args) for v in values)

    @property
    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for pairs in self.values("ENV"):
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
        return env

    def last(self, cmd: str) -> tuple[str, ...] | None:
        found = self.values(cmd)
        return found[-1] if found else None

    def copies_from(self, stage: str) -> list[tuple[str, ...]]:
        return [c.value for c in self.commands if c.cmd == "COPY" and f"--from={stage}" in c.flags]


def substitute(text: str, args: dict[str, str]) -> str:
    return _VAR.sub(lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


@cache
def parsed() -> tuple[dockerfile.Command, ...]:
    return tuple(dockerfile.parse_file(str(DOCKERFILE)))


def stage_commands() -> dict[str, list[dockerfile.Command]]:
    """Instructions per build stage, by stage name, in file order (FROM first)."""
    result: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] | None = None
    for command in parsed():
        if command.cmd == "FROM":
            current = result.setdefault(command.value[-1], [command])
        elif current is not None:
            current.append(command)
    return result


def global_args() -> dict[str, str]:
    """ARGs before the first FROM, with their defaults ('' for none)."""
    args: dict[str, str] = {}
    for command in parsed():
        if command.cmd == "FROM":
            break
        if command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            args[name] = default
    return args


def image(target: str = "runtime", **build_args: str) -> Image:
    args = {**global_args(), **build_args}
    all_stages = stage_commands()
    chain: list[str] = []
    stage = target
    while stage in all_stages:
        chain.insert(0, stage)
        stage = substitute(all_stages[stage][0].value[0], args)
    commands = tuple(c for name in chain for c in all_stages[name][1:])
    return Image(tuple(chain), stage, commands, args)


def workspace_members() -> list[str]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return sorted(
        path.parent.relative_to(ROOT).as_posix()
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for path in ROOT.glob(f"{pattern}/pyproject.toml")
    )


def dockerignore_excludes(path: str) -> bool:
    """.dockerignore, simplified: enough for the top-level paths the Dockerfile copies."""
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


def installs_ffmpeg(built: Image) -> bool:
    return any(FFMPEG_INSTALL in run[0] for run in built.values("RUN"))


def assert_builds_one_package_from_the_lock(builder: Image, package: str, extra: str) -> None:
    """Dependencies from the lock first, then shared/ and the package's own sources."""
    sync = f"uv sync --frozen --no-dev --package {package}{extra}"
    assert [run[0] for run in builder.values("RUN")] == [
        f"{sync} --no-install-workspace --no-editable",
        f"{sync} --no-editable",
    ]
    copies = [c for c in builder.commands if c.cmd == "COPY" and not c.flags]
    first_sync = next(i for i, c in enumerate(builder.commands) if c.cmd == "RUN")
    early = {src for c in builder.commands[:first_sync] if c.cmd == "COPY" for src in c.value[:-1]}
    # uv reads the whole workspace: every member's pyproject.toml, copied before the first sync.
    assert {"pyproject.toml", "uv.lock"} | {
        f"{m}/pyproject.toml" for m in workspace_members()
    } <= early
    sources = [src for c in copies for src in builder.expand(c.value[:-1])]
    service_dir = "services/" + package.removeprefix("mpr-") + "/"
    assert {s for s in sources if s.endswith("/")} == {"shared/", service_dir}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not dockerignore_excludes(source), f"{source} is excluded by .dockerignore"
    assert builder.env["UV_PROJECT_ENVIRONMENT"] == "/app/.venv"


@pytest.mark.parametrize("service", SERVICES)
def test_builder_installs_only_this_service_from_the_lock(service) -> None:
    builder = image("builder", SERVICE=service)
    assert_builds_one_package_from_the_lock(builder, f"mpr-{service}", extra="")


def test_every_workspace_service_has_an_image_stage_and_no_other() -> None:
    # shared/ is a library and cli/ a client installed apart (uv tool install ./cli): no image.
    services = {
        m.removeprefix("services/") for m in workspace_members() if m.startswith("services/")
    }
    assert services == set(SERVICES)
    stages = {s.removeprefix("service-") for s in stage_commands() if s.startswith("service-")}
    assert stages == services


def test_the_default_target_is_the_service_runtime() -> None:
    assert list(stage_commands())[-1] == "runtime", "the runtime stage must be the last"
    assert global_args()["SERVICE"] == "", "SERVICE must be chosen, not defaulted"
    assert global_args()["PYTHON_IMAGE"] == "python:3.11-slim"


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_is_slim_non_root_and_listens_outside(service) -> None:
    runtime = image(SERVICE=service)
    assert runtime.stages[-2:] == (f"service-{service}", "runtime")
    assert runtime.base == "python:3.11-slim"
    assert runtime.copies_from("builder") == [("/app/.venv", "/app/.venv")]
    assert runtime.last("USER") == ("10001:10001",)
    env = runtime.env
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert LISTEN[service].items() <= env.items()
    assert runtime.last("CMD") == ("python", "-m", f"mpr_{service}")
    assert runtime.last("ENTRYPOINT") is None
    assert installs_ffmpeg(runtime) is (service in FFMPEG_SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_healthcheck_probes_the_port_the_image_listens_on(service) -> None:
    runtime = image(SERVICE=service)
    (check,) = [c for c in runtime.commands if c.cmd == "HEALTHCHECK"]
    (port_var,) = re.findall(r"os\.environ\['(\w+)'\]", check.value[-1])
    (exposed,) = runtime.values("EXPOSE")
    assert (runtime.env[port_var],) == exposed
    assert "/api/health" in check.value[-1]


def test_lambda_image_runs_the_handler_in_the_runtime_interface_client() -> None:
    built = image("lambda")
    assert "runtime" not in built.stages, "the lambda target must not need SERVICE"
    assert installs_ffmpeg(built)
    assert built.copies_from("lambda-builder") == [("/app/.venv", "/app/.venv")]
    assert built.last("ENTRYPOINT") == ("python", "-m", "awslambdaric")
    assert built.last("CMD") == (LAMBDA_HANDLER,)
    assert built.last("USER") == ("10001:10001",)
    # The handler exists where CMD names it (read, not imported: it pulls in boto3).
    module, _, function = LAMBDA_HANDLER.rpartition(".")
    source = Path(importlib.util.find_spec(module).origin).read_text()
    assert re.search(rf"^def {function}\(event", source, re.M), f"no {function}() in {module}"


def test_lambda_builder_installs_the_transcoder_with_the_runtime_interface_client() -> None:
    builder = image("lambda-builder")
    assert_builds_one_package_from_the_lock(builder, "mpr-transcoder", extra=" --extra lambda")
    transcoder = tomllib.loads((ROOT / "services/transcoder/pyproject.toml").read_text())
    extra = transcoder["project"]["optional-dependencies"]["lambda"]
    assert [re.match(r"[\w-]+", requirement).group() for requirement in extra] == ["awslambdaric"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (locked,) = [p for p in lock["package"] if p["name"] == "mpr-transcoder"]
    assert {d["name"] for d in locked["optional-dependencies"]["lambda"]} == {"awslambdaric"}
