"""Readers for the deployment files: compose with its interpolation, dotenv, kustomize, settings."""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
# Minimal schemas of the custom resources MPR uses (no CRD schema is available offline).
CRD_SCHEMAS = {
    "keda.sh/v1alpha1": Path(__file__).with_name("keda.schema.json"),
    "monitoring.coreos.com/v1": Path(__file__).with_name("prometheus-operator.schema.json"),
    "rabbitmq.com/v1beta1": Path(__file__).with_name("rabbitmq.schema.json"),
}
# Opt-in components of the prod overlay (commented out in its kustomization.yaml).
OPTIONAL_COMPONENTS = ("rabbitmq-cluster", "aws-iam")

# Settings classes by service: module, class. The shared one is every service's base.
SETTINGS = {
    "shared": ("mpr_shared.settings", "CommonSettings"),
    "gateway": ("mpr_gateway.settings", "GatewaySettings"),
    "catalog": ("mpr_catalog.settings", "CatalogSettings"),
    "notifier": ("mpr_notifier.settings", "NotifierSettings"),
    "transcoder": ("mpr_transcoder.settings", "TranscoderSettings"),
}

# ---------------------------------------------------------------- compose interpolation
# https://docs.docker.com/reference/compose-file/interpolation/


class MissingVariable(ValueError):
    """A ${VAR:?message} or ${VAR?message} whose variable is unset."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPR = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate(text: str, env: Mapping[str, str], used: set[str] | None = None) -> str:
    """Expand $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+alt}, $$."""
    used = set() if used is None else used
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ValueError(f"unclosed ${{ in {text!r}")
            out.append(_expand(text[i + 2 : j - 1], env, used))
            i = j
        elif match := _NAME.match(text, i + 1):
            used.add(match.group())
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            raise ValueError(f"a lone $ in {text!r}; write $$ for a literal dollar")
    return "".join(out)


def _expand(expr: str, env: Mapping[str, str], used: set[str]) -> str:
    match = _EXPR.fullmatch(expr)
    if not match:
        raise ValueError(f"invalid interpolation ${{{expr}}}")
    name, op, arg = match["name"], match["op"], match["arg"]
    used.add(name)
    value = env.get(name)
    if op is None:
        return value or ""
    arg = interpolate(arg, env, used)
    present = bool(value) if op.startswith(":") else value is not None
    if op.endswith("-"):
        return value if present else arg
    if op.endswith("?"):
        if not present:
            raise MissingVariable(f"{name}: {arg}")
        return value
    return arg if present else ""


def interpolate_tree(node: Any, env: Mapping[str, str], used: set[str] | None = None) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, used)
    if isinstance(node, list):
        return [interpolate_tree(item, env, used) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env, used) for key, value in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file as Compose sees it with `--env-file deploy/.env.example`."""
    return interpolate_tree(raw_compose(), dict(env_example() if env is None else env))


def compose_variables() -> set[str]:
    used: set[str] = set()
    interpolate_tree(raw_compose(), {}, used)
    return used


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's `environment:` as a dict (it may be a mapping or a list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


# ---------------------------------------------------------------- dotenv


@dataclass(frozen=True)
class DotEnv:
    values: dict[str, str]  # active NAME=value lines
    commented: set[str]  # optional settings shown as #NAME=value

    @property
    def names(self) -> set[str]:
        return set(self.values) | self.commented


_ENV_LINE = re.compile(r"(?P<comment>#)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)")


def read_dotenv(path: Path) -> DotEnv:
    values: dict[str, str] = {}
    commented: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        match = _ENV_LINE.fullmatch(line)
        if match and match["comment"]:
            commented.add(match["name"])
        elif match:
            if match["name"] in values:
                raise AssertionError(f"{path}:{number}: {match['name']} is set twice")
            values[match["name"]] = match["value"]
        elif line and not line.startswith("#"):
            raise AssertionError(f"{path}:{number}: not NAME=value: {line!r}")
    return DotEnv(values, commented)


@cache
def env_example() -> dict[str, str]:
    return read_dotenv(ENV_EXAMPLE).values


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class SettingsCatalog:
    classes: dict[str, type]
    missing: dict[str, str]  # service -> why its settings could not be imported

    def aliases(self, service: str | None = None) -> set[str]:
        classes = self.classes.values() if service is None else [self.classes[service]]
        return {alias for cls in classes for alias in field_aliases(cls)}

    def skip_if_incomplete(self) -> None:
        if self.missing:
            pytest.skip(
                "settings of some services do not exist yet, so names cannot be checked "
                "against them: " + "; ".join(f"{s}: {why}" for s, why in self.missing.items())
            )


def field_aliases(cls: type) -> set[str]:
    aliases: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            aliases.add(alias)
        elif alias is None:
            aliases.add(name.upper())
        else:  # AliasChoices
            aliases.update(c for c in alias.choices if isinstance(c, str))
    return aliases


@cache
def settings_catalog() -> SettingsCatalog:
    classes: dict[str, type] = {}
    missing: dict[str, str] = {}
    for service, (module_name, class_name) in SETTINGS.items():
        try:
            classes[service] = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            missing[service] = f"{module_name}.{class_name} ({exc})"
    return SettingsCatalog(classes, missing)


def build_settings(cls: type, env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Instantiate a Settings class from exactly `env`, as the process environment."""
    for alias in field_aliases(cls):
        monkeypatch.delenv(alias, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cls(_env_file=None)


def service_of_command(command: list[str] | str | None) -> str | None:
    """`python -m mpr_gateway` → gateway; the migrations command → shared."""
    if not command:
        return None
    argv = command.split() if isinstance(command, str) else list(command)
    if "-m" in argv:
        module = argv[argv.index("-m") + 1]
        if module == "mpr_shared.db":
            return "shared"
        if module.startswith("mpr_"):
            return module.removeprefix("mpr_")
    return None


# ---------------------------------------------------------------- kustomize


@dataclass(frozen=True)
class Kustomize:
    argv: tuple[str, ...]
    version: str


def _version_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip()


@cache
def find_kustomize() -> Kustomize | str:
    """kubectl's built-in kustomize, or a standalone kustomize; else why there is none."""
    reasons = []
    if kubectl := shutil.which("kubectl"):
        raw = _version_of([kubectl, "version", "--client", "-o", "json"])
        version = json.loads(raw).get("kustomizeVersion", "") if raw else ""
        if _major(version) >= 4:
            return Kustomize((kubectl, "kustomize"), version)
        reasons.append(f"{kubectl} bundles kustomize {version or '?'} (components need v4+)")
    if kustomize := shutil.which("kustomize"):
        version = _version_of([kustomize, "version"]) or ""
        if _major(version) >= 4:
            return Kustomize((kustomize, "build"), version)
        reasons.append(f"{kustomize} is {version or '?'} (components need v4+)")
    return "; ".join(reasons) or "neither kubectl nor kustomize is on PATH"


def _major(version: str) -> int:
    match = re.search(r"v?(\d+)\.\d+", version)
    return int(match.group(1)) if match else 0


def require_kustomize() -> Kustomize:
    found = find_kustomize()
    if isinstance(found, str):
        pytest.skip(
            "THE KUBERNETES MANIFESTS WERE NOT RENDERED OR VALIDATED: "
            f"{found}. Install kubectl >= 1.21 (the `kubectl` package of the Kubernetes or "
            "Google Cloud apt repository; Debian's own kubernetes-client 1.20 bundles a "
            "kustomize too old for components) or a standalone kustomize v4+."
        )
    return found


@cache
def render(overlay: str, *components: str) -> tuple[dict[str, Any], ...]:
    """`kustomize build` of an overlay, plus optional components (by name) on top of it."""
    if not components:
        return kustomize_build(K8S / "overlays" / overlay)
    with tempfile.TemporaryDirectory() as tmp:
        to_k8s = os.path.relpath(K8S, tmp)  # kustomize refuses absolute paths
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [f"{to_k8s}/overlays/{overlay}"],
            "components": [f"{to_k8s}/components/{name}" for name in components],
        }
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return kustomize_build.__wrapped__(Path(tmp))


@cache
def kustomize_build(path: Path) -> tuple[dict[str, Any], ...]:
    tool = require_kustomize()
    result = subprocess.run(
        [*tool.argv, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode:
        raise AssertionError(f"kustomize failed for {path}:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> Iterator[dict[str, Any]]:
    return (doc for doc in docs if doc["kind"] == kind)


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(docs: tuple[dict[str, Any], ...]) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job", "ScaledJob"})


def pod_template(workload: Mapping[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "ScaledJob":
        return workload["spec"]["jobTargetRef"]["template"]
    return workload["spec"]["template"]


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    return pod_template(workload)["spec"]


def containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Init containers first, then the containers."""
    spec = pod_spec(workload)
    return [*spec.get("initContainers", ()), *spec["containers"]]


def mpr_workload(docs: tuple[dict[str, Any], ...], name: str) -> dict[str, Any]:
    """The Deployment, or (the transcoder in prod) the ScaledJob, of that name."""
    found = [d for d in workloads(docs) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one workload {name}, found {[d['kind'] for d in found]}"
    return found[0]


def config_map(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (cm,) = (
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("mpr-config")
    )
    return cm


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


def container_env(
    docs: tuple[dict[str, Any], ...], container: Mapping[str, Any]
) -> dict[str, str] | None:
    """The environment a container gets from envFrom and env; None if a Secret is external."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", ()):
        if ref := source.get("configMapRef"):
            env.update(one(docs, "ConfigMap", ref["name"])["data"])
        elif ref := source.get("secretRef"):
            secrets = [s for s in of_kind(docs, "Secret") if s["metadata"]["name"] == ref["name"]]
            if not secrets:
                return None
            env.update(secret_data(secrets[0]))
    for item in container.get("env", ()):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif ref := item.get("valueFrom", {}).get("configMapKeyRef"):
            env[item["name"]] = one(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif ref := item.get("valueFrom", {}).get("secretKeyRef"):
            env[item["name"]] = secret_data(one(docs, "Secret", ref["name"]))[ref["key"]]
        elif ref := item.get("valueFrom", {}).get("resourceFieldRef"):
            env[item["name"]] = resource_field(container, ref)
    return env


def resource_field(container: Mapping[str, Any], ref: Mapping[str, str]) -> str:
    """The downward API's value: the container's resource in `divisor` units, rounded up."""
    assert ref.get("containerName", container["name"]) == container["name"], ref
    kind, _, resource = ref["resource"].partition(".")
    value = quantity(container["resources"][kind][resource])
    return str(math.ceil(value / quantity(ref.get("divisor", "1"))))


_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20}
_SUFFIXES |= {"Gi": 2**30, "Ti": 2**40}


def quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity ("500m", "2", "40Gi") as a number (cores, bytes)."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match and (not match[2] or match[2] in _SUFFIXES), f"not a quantity: {text!r}"
    return float(match[1]) * _SUFFIXES.get(match[2], 1)
