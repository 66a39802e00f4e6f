"""Presets: the named outputs a job can ask for."""

from __future__ import annotations

from mpr_shared.contracts import JobKind
from mpr_shared.presets import PRESETS, Preset


def list_presets(kind: JobKind | None = None) -> list[Preset]:
    """Every preset (of ``kind``, when given), by kind then name."""
    presets = (p for p in PRESETS.values() if kind is None or p.kind is kind)
    return sorted(presets, key=lambda p: (p.kind.value, p.name))
