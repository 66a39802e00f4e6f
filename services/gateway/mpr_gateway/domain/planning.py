"""Turning a job request into a runnable plan: preset, spec, time checks and the output key."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from pydantic import ValidationError

from mpr_gateway.domain.errors import InvalidRequest
from mpr_gateway.domain.keys import MAX_KEY_BYTES, check_output_key, default_output_key
from mpr_shared.contracts import JobKind, JobSpec, TrimMode
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
class JobOptions:
    """What the client asked for, before validation."""

    kind: JobKind
    preset: str | None = None
    output_key: str | None = None
    start: float | None = None
    end: float | None = None
    mode: TrimMode | None = None
    at: float | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class JobPlan:
    spec: JobSpec
    preset: str | None
    output_key: str


def plan_job(job_id: UUID, source: Source, options: JobOptions) -> JobPlan:
    """Validate ``options`` against ``source`` and derive the spec and output key."""
    kind = options.kind
    if kind in VIDEO_ONLY_KINDS and source.media_type is not MediaType.VIDEO:
        raise InvalidRequest(
            f"kind {kind.value!r} needs a video source and {source.key!r} is audio; "
            "use kind 'audio' or 'trim' for audio sources"
        )
    spec = _spec(options)
    preset = spec.output_preset
    # Trim keeps the source's container; every other kind writes its preset's.
    ext = preset.extension if preset is not None else extension(source.key)
    _check_times(spec, source.duration)
    if options.output_key is not None:
        output_key = check_output_key(options.output_key, kind, ext)
    else:
        output_key = default_output_key(source.key, job_id, kind, spec.preset, ext)
        if len(output_key.encode()) > MAX_KEY_BYTES:
            raise InvalidRequest(
                "the source key is too long to derive an output key from it; pass output_key"
            )
    return JobPlan(spec=spec, preset=spec.preset, output_key=output_key)


def _spec(options: JobOptions) -> JobSpec:
    """The JobSpec (mpr_shared.jobspec holds the rules), its problems as InvalidRequest."""
    try:
        return JobSpec(
            kind=options.kind,
            preset=options.preset,
            start=options.start,
            end=options.end,
            mode=options.mode,
            at=options.at,
            count=options.count,
        )
    except ValidationError as exc:
        raise _invalid(exc) from None


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
