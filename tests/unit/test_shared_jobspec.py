"""JobSpec: the one place that says which parameters a job kind takes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mpr_shared.jobspec import JobKind, JobSpec, PresetError
from mpr_shared.presets import DEFAULT_PRESET, PRESETS


def _cause(err: pytest.ExceptionInfo[ValidationError]) -> BaseException:
    (error,) = err.value.errors()
    return error["ctx"]["error"]


@pytest.mark.parametrize("kind", [JobKind.AUDIO, JobKind.THUMBNAIL, JobKind.HLS])
def test_the_kinds_default_preset_is_filled_in(kind: JobKind):
    spec = JobSpec(kind=kind)
    assert spec.preset == DEFAULT_PRESET[kind]
    assert spec.output_preset is PRESETS[spec.preset]


def test_transcode_needs_a_preset_and_lists_the_valid_ones():
    with pytest.raises(ValidationError, match="kind 'transcode' needs a preset") as err:
        JobSpec(kind="transcode")
    cause = _cause(err)
    assert isinstance(cause, PresetError)
    assert cause.valid == ["h264-1080p", "h264-480p", "h264-720p", "hevc-1080p", "vp9-720p"]


@pytest.mark.parametrize(
    ("kind", "preset"), [("audio", "h264-720p"), ("transcode", "nope"), ("hls", "audio-aac")]
)
def test_a_preset_must_exist_and_serve_the_kind(kind: str, preset: str):
    with pytest.raises(ValidationError, match=f"unknown preset '{preset}' for kind '{kind}'") as e:
        JobSpec(kind=kind, preset=preset)
    cause = _cause(e)
    assert isinstance(cause, PresetError)
    assert cause.valid and all(PRESETS[name].kind == kind for name in cause.valid)


def test_trim_takes_no_preset_and_keeps_the_codecs():
    with pytest.raises(ValidationError, match="trim keeps the source's codecs and takes no preset"):
        JobSpec(kind="trim", preset="h264-480p", start=1, end=2)
    spec = JobSpec(kind="trim", start=1, end=2)
    assert spec.preset is None and spec.output_preset is None


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "trim", "start": 0, "end": float("inf")},
        {"kind": "trim", "start": float("nan"), "end": 2},
        {"kind": "thumbnail", "at": float("inf")},
        {"kind": "thumbnail", "at": "Infinity"},
    ],
)
def test_numbers_are_finite(fields: dict):
    with pytest.raises(ValidationError, match="finite number"):
        JobSpec(**fields)


def test_a_spec_round_trips_unchanged():
    spec = JobSpec(kind="thumbnail", at=1.5, count=4)
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec
    assert spec.model_dump(exclude_none=True) == {
        "kind": "thumbnail",
        "preset": "thumbnail-jpg",
        "at": 1.5,
        "count": 4,
    }
