"""Turning a job spec into a runnable plan: source fit, time checks and the output key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from mpr_gateway.domain.errors import InvalidRequest
from mpr_gateway.domain.keys import MAX_KEY_BYTES, check_output_key, default_output_key
from mpr_shared.contracts import JobKind, JobSpec
from mpr_shared.media import MediaType, extension
from mpr_shared.presets import PresetError

VIDEO_ONLY_KINDS = frozenset({JobKind.TRANSCODE, JobKind.THUMBNAIL, JobKind.HLS})


@dataclass(frozen=True, slots=True)
class Source:
    """The object a job reads, with what the catalog knows about it."""

    bucket: str
    key: str
    media_type: MediaType
    asset_id: UUID | None = None
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class JobPlan:
    spec: JobSpec
    output_key: str


def job_spec(fields: Mapping[str, Any]) -> JobSpec:
    """The JobSpec of a request's fields; what does not fit the kind is an InvalidRequest."""
    try:
        return JobSpec.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(exc) from None


def plan_job(job_id: UUID, source: Source, spec: JobSpec, output_key: str | None) -> JobPlan:
    """Check ``spec`` against ``source``; the output key is ``output_key`` or the default."""
    kind = spec.kind
    if kind in VIDEO_ONLY_KINDS and source.media_type is not MediaType.VIDEO:
        raise InvalidRequest(
            f"kind {kind.value!r} needs a video source and {source.key!r} is audio; "
            "use kind 'audio' or 'trim' for audio sources"
        )
    preset = spec.output_preset
    # Trim keeps the source's container; every other kind writes its preset's.
    ext = preset.extension if preset is not None else extension(source.key)
    _check_times(spec, source.duration)
    if output_key is not None:
        return JobPlan(spec, check_output_key(output_key, kind, ext))
    derived = default_output_key(source.key, job_id, kind, spec.preset, ext)
    if len(derived.encode()) > MAX_KEY_BYTES:
        raise InvalidRequest(
            "the source key is too long to derive an output key from it; pass output_key"
        )
    return JobPlan(spec, derived)


def _invalid(exc: ValidationError) -> InvalidRequest:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, PresetError) and cause.valid:
            return InvalidRequest(str(cause), details={"valid_presets": cause.valid})
        message = err["msg"].removeprefix("Value error, ")
        problems.append("".join(f"{p}: " for p in err["loc"]) + message)
    return InvalidRequest("; ".join(problems), details={"problems": problems})


def _check_times(spec: JobSpec, duration: float | None) -> None:
    """Times must fall inside the probed duration, when the catalog has probed the source."""
    if duration is None:
        return
    for name in ("start", "end", "at"):
        value = getattr(spec, name)
        if value is None:
            continue
        limit_ok = value <= duration if name == "end" else value < duration
        if not limit_ok:
            raise InvalidRequest(
                f"{name}={value:g}s is past the end of the source ({duration:g}s long); "
                f"choose a time {'up to' if name == 'end' else 'before'} {duration:g}s",
                details={"field": name, "duration_seconds": duration},
            )
