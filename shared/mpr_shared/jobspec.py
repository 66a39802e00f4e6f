"""The one job spec: every rule about which parameters a kind takes lives here.

The gateway builds it from a request, ``CreateJob`` and ``ProcessMedia`` carry it, the
transcoder reads it; each side gets the same answer. Its preset is always resolved: the
kind's default when none was named, never one of another kind, none for trim.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mpr_shared.presets import (
    DEFAULT_PRESET,
    PRESETS,
    JobKind,
    Preset,
    PresetError,
    get_preset,
    presets_for,
)

__all__ = ["JobKind", "JobSpec", "PresetError", "TrimMode"]


class TrimMode(StrEnum):
    COPY = "copy"
    ACCURATE = "accurate"


def _resolve_preset(kind: JobKind, name: str | None) -> str | None:
    """The preset a job of ``kind`` uses; PresetError when it cannot take ``name``."""
    if kind is JobKind.TRIM:
        if name is not None:
            raise PresetError(
                "trim keeps the source's codecs and takes no preset; omit 'preset' "
                "(mode 'accurate' re-encodes at the cut points)",
                [],
            )
        return None
    name = name or DEFAULT_PRESET[kind]
    if name is None:
        valid = presets_for(kind)
        raise PresetError(
            f"kind {kind.value!r} needs a preset; valid presets: {', '.join(valid)}", valid
        )
    return get_preset(name, kind).name


class JobSpec(BaseModel):
    """What to make from the source; which fields apply depends on ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: JobKind = Field(description="transcode | trim | audio | thumbnail | hls")
    preset: str | None = Field(
        None,
        validate_default=True,
        description="Preset name (see the preset list); the kind's default when omitted; "
        "none for trim.",
    )
    start: FiniteFloat | None = Field(None, ge=0, description="Trim start, seconds.")
    end: FiniteFloat | None = Field(None, gt=0, description="Trim end, seconds.")
    mode: TrimMode | None = Field(None, description="Trim mode: copy (keyframes) or accurate.")
    at: FiniteFloat | None = Field(None, ge=0, description="Thumbnail time, seconds.")
    count: int | None = Field(
        None, ge=1, le=100, description="Thumbnail sprite: number of frames (omit for one JPEG)."
    )

    @field_validator("preset")
    @classmethod
    def _preset_fits_kind(cls, name: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        return name if kind is None else _resolve_preset(kind, name)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Self:
        if self.kind is JobKind.TRIM:
            if self.start is None or self.end is None:
                raise ValueError("trim needs both 'start' and 'end' (seconds)")
            if self.end <= self.start:
                raise ValueError("trim 'end' must be greater than 'start'")
        elif self.start is not None or self.end is not None or self.mode is not None:
            raise ValueError("'start', 'end' and 'mode' apply only to kind 'trim'")
        if self.kind is not JobKind.THUMBNAIL and (self.at is not None or self.count is not None):
            raise ValueError("'at' and 'count' apply only to kind 'thumbnail'")
        return self

    @property
    def output_preset(self) -> Preset | None:
        """The resolved preset (None for trim, which keeps the source's codecs)."""
        return PRESETS[self.preset] if self.preset is not None else None
