"""Presets and readiness: the small read-only use cases."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from mpr_gateway.application.ports import Probe
from mpr_shared.contracts import JobKind
from mpr_shared.presets import PRESETS, Preset


def list_presets(kind: JobKind | None = None) -> list[Preset]:
    """Every preset (of ``kind``, when given), by kind then name."""
    presets = (p for p in PRESETS.values() if kind is None or p.kind is kind)
    return sorted(presets, key=lambda p: (p.kind.value, p.name))


@dataclass(frozen=True, slots=True)
class DependencyStatus:
    name: str
    ok: bool
    detail: str


async def readiness(probes: Sequence[Probe], limit_seconds: float = 3.0) -> list[DependencyStatus]:
    """Check every dependency at once, each bounded by ``limit_seconds``."""

    async def one(probe: Probe) -> DependencyStatus:
        try:
            await asyncio.wait_for(probe.check(), limit_seconds)
        except TimeoutError:
            return DependencyStatus(probe.name, False, f"no answer within {limit_seconds:g}s")
        except Exception as exc:
            return DependencyStatus(probe.name, False, f"{type(exc).__name__}: {exc}"[:300])
        return DependencyStatus(probe.name, True, "ok")

    return list(await asyncio.gather(*(one(p) for p in probes)))
