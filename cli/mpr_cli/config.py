"""Where the CLI finds the gateway and its key: the environment, then the config file."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mpr_cli.errors import CliError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_EVENTS_URL = "http://127.0.0.1:8001"
# Setting name (as `mpr config set` spells it) -> environment variable.
SETTINGS = {"url": "MPR_URL", "api-key": "MPR_API_KEY", "events-url": "MPR_EVENTS_URL"}
MASKED = "api-key"  # shown masked by `mpr config list`


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CONFIG_HOME/mpr/config.toml (~/.config when unset), as the XDG spec says."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mpr" / "config.toml"


def read_file(path: Path) -> dict[str, str]:
    """The settings a config file holds ({} when there is none)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"cannot read the config file {path}: {exc}") from None
    return {k: str(v) for k, v in data.items() if k in SETTINGS}


def write_file(path: Path, values: Mapping[str, str]) -> None:
    """Write the settings with mode 0600 (it holds the API key), replacing the file atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # JSON strings are valid TOML basic strings: quotes, backslashes and controls escaped.
    text = "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in sorted(values.items()))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o600)  # an older file with wider permissions is narrowed too
    os.replace(tmp, path)


@dataclass(frozen=True)
class Setting:
    name: str
    value: str | None
    source: str  # "env MPR_URL", "config file", "default" or "unset"


def resolve(name: str, environ: Mapping[str, str], stored: Mapping[str, str]) -> Setting:
    """One setting: the environment wins over the config file, which wins over the default."""
    variable = SETTINGS[name]
    if environ.get(variable):
        return Setting(name, environ[variable], f"env {variable}")
    if stored.get(name):
        return Setting(name, stored[name], "config file")
    default = {"url": DEFAULT_URL}.get(name)
    return Setting(name, default, "default" if default else "unset")


@dataclass(frozen=True)
class Config:
    """What one command runs with."""

    url: str
    api_key: str | None
    events_url: str | None  # None: ask the gateway (GET /api/config), then DEFAULT_EVENTS_URL

    @classmethod
    def load(cls, environ: Mapping[str, str] = os.environ) -> Config:
        stored = read_file(config_path(environ))
        url, key, events = (resolve(n, environ, stored).value for n in SETTINGS)
        return cls(url=(url or DEFAULT_URL).rstrip("/"), api_key=key, events_url=events)

    def require_key(self) -> str:
        if not self.api_key:
            raise CliError(
                "no API key: set MPR_API_KEY or run `mpr config set api-key` "
                "(make dev prints the key and keeps it in var/dev-api-key)"
            )
        return self.api_key


def masked(value: str | None) -> str | None:
    """An API key as `mpr config list` shows it: its last four characters."""
    if not value:
        return value
    return "****" + value[-4:] if len(value) > 8 else "****"
