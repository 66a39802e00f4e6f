"""The environment tests run in: nothing a developer exported for MPR leaks into a test.

A shell with ``MPR_API_KEYS`` or ``DATABASE_URL`` exported (for ``make dev``) must not change
what a test sees, in the pytest process or in the services it starts as subprocesses. The
``MPR_TEST_*`` variables stay: they are how a developer points the tests at other endpoints.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from functools import cache

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from mpr_shared.settings import CommonSettings

SERVICES = ("gateway", "catalog", "transcoder", "notifier")
KEPT_PREFIX = "MPR_TEST_"
# Families of variables the services, boto3, libpq/asyncpg and scripts/*.sh read, beyond the
# settings classes' own names: a new setting in one of them is cleared before it has a test.
PREFIXES = (
    "MPR_",
    "AWS_",
    "S3_",
    "GATEWAY_",
    "NOTIFIER_",
    "TRANSCODER_",
    "HEALTH_",
    "LOG_",
    "WEBHOOK_",
    "SSE_",
    "PROBE_",
    "SCAN_",
    "OUTBOX_",
    "RABBITMQ_",
    "PG",
)
# What scripts/dev.sh reads besides the services' settings.
SCRIPT_VARIABLES = frozenset({"PORT", "TRANSCODERS", "PROCFILE"})
# Set, not cleared: boto3 must never wait for an EC2 metadata endpoint in a test.
PINNED = {"AWS_EC2_METADATA_DISABLED": "true"}


def _settings_classes() -> Iterator[type[BaseSettings]]:
    for service in SERVICES:
        importlib.import_module(f"mpr_{service}.settings")
    pending: list[type[BaseSettings]] = [CommonSettings]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        yield cls


def _env_names(cls: type[BaseSettings]) -> Iterator[str]:
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            yield alias.upper()
        elif isinstance(alias, AliasChoices):
            yield from (c.upper() for c in alias.choices if isinstance(c, str))
        else:
            yield (cls.model_config.get("env_prefix", "") + (field.alias or name)).upper()


@cache
def settings_variables() -> frozenset[str]:
    """Every variable some service's Settings class reads."""
    return frozenset(name for cls in _settings_classes() for name in _env_names(cls))


def is_service_variable(name: str) -> bool:
    """True for a variable that changes what MPR code does (MPR_TEST_* excepted)."""
    upper = name.upper()
    if upper.startswith(KEPT_PREFIX):
        return False
    return upper in settings_variables() or upper in SCRIPT_VARIABLES or upper.startswith(PREFIXES)


def stray(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Names in ``environ`` a test must not inherit (a pinned one with another value too)."""
    names = [n for n in environ if is_service_variable(n) and n not in PINNED]
    return sorted(names + [n for n, v in PINNED.items() if n in environ and environ[n] != v])


def scrub(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Clear from ``environ`` what a test must not inherit, pin the rest; return what went."""
    removed = stray(environ)
    for name in removed:
        del environ[name]
    environ.update(PINNED)
    return removed


def clean_environ(**overrides: str) -> dict[str, str]:
    """A copy of this process's environment for a subprocess under test, plus ``overrides``."""
    environ = dict(os.environ)
    scrub(environ)
    return {**environ, **overrides}
