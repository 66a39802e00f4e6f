"""Contracts, media types, settings and presets: pure logic."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from mpr_shared.contracts import (
    EVENTS_BY_ROUTING_KEY,
    CancelJob,
    Event,
    JobCompleted,
    JobFailed,
    JobKind,
    JobSpec,
    JobStarted,
    ProcessMedia,
    ScanBucket,
    WorkerHeartbeat,
    WorkerStopped,
)
from mpr_shared.media import MediaType, is_supported, media_type
from mpr_shared.presets import PRESETS, UnknownPreset, get_preset
from mpr_shared.settings import CommonSettings, normalize_database_url


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a.mp4", MediaType.VIDEO),
        ("dir/B.MKV", MediaType.VIDEO),
        ("x.WebM", MediaType.VIDEO),
        ("song.flac", MediaType.AUDIO),
        ("deep/er/track.M4A", MediaType.AUDIO),
        ("notes.txt", None),
        ("noext", None),
    ],
)
def test_media_type_is_case_insensitive_and_exact(key, expected):
    assert media_type(key) == expected


def test_all_spec_extensions_supported():
    exts = ".mp4 .mkv .avi .mov .webm .flv .wmv .m4v .mp3 .wav .flac .aac .ogg .m4a"
    for ext in exts.split(" "):
        assert is_supported(f"file{ext}"), ext


def test_every_message_has_envelope_and_round_trips():
    msg = ProcessMedia(
        job_id=uuid.uuid4(),
        source_bucket="in",
        source_key="a b+c%.mp4",
        spec=JobSpec(kind=JobKind.TRANSCODE, preset="h264-480p"),
        output_bucket="out",
        output_key="x.mp4",
        correlation_id="req-1",
    )
    again = ProcessMedia.model_validate_json(msg.model_dump_json())
    assert again == msg
    assert again.id and again.occurred_at.tzinfo is not None and again.schema_version == 1
    child = JobCompleted(job_id=msg.job_id, outputs=[], **msg.caused())
    assert child.causation_id == msg.id and child.correlation_id == "req-1"


def test_routing_keys_are_unique():
    assert len(EVENTS_BY_ROUTING_KEY) == 12


def test_log_tail_is_bounded_and_old_messages_still_parse():
    old = JobCompleted(job_id=uuid.uuid4(), outputs=[]).model_dump(mode="json")
    del old["log_tail"]
    assert JobCompleted.model_validate(old).log_tail == []
    lines = [f"{i} " + "x" * 600 for i in range(30)]
    failed = JobFailed(job_id=uuid.uuid4(), reason="r", log_tail=lines)
    assert len(failed.log_tail) == 20 and failed.log_tail[0].startswith("10 ")
    assert all(len(line) == 500 for line in failed.log_tail)


def test_worker_events_describe_every_field():
    for model in (WorkerHeartbeat, WorkerStopped):
        own = set(model.model_fields) - set(Event.model_fields)
        assert own and all(model.model_fields[f].description for f in own), model
    assert EVENTS_BY_ROUTING_KEY["worker.heartbeat"] is WorkerHeartbeat


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "trim", "start": 1.0},
        {"kind": "trim", "start": 5.0, "end": 2.0},
        {"kind": "transcode", "preset": "h264-480p", "start": 1.0},
        {"kind": "audio", "at": 2.0},
        {"kind": "explode"},
    ],
)
def test_job_spec_rejects_fields_that_do_not_fit(fields):
    with pytest.raises(ValidationError):
        JobSpec(**fields)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(UnknownPreset) as err:
        get_preset("h264-4k", JobKind.TRANSCODE)
    assert "h264-480p" in str(err.value) and "audio-aac" not in err.value.valid
    assert {
        "h264-1080p",
        "h264-720p",
        "h264-480p",
        "hevc-1080p",
        "vp9-720p",
        "audio-aac",
        "audio-mp3",
        "thumbnail-jpg",
        "hls-h264",
    } <= set(PRESETS)


def test_production_refuses_placeholder_secrets():
    with pytest.raises(ValidationError, match="AWS_SECRET_ACCESS_KEY"):
        CommonSettings(
            MPR_ENV="production",
            AMQP_URL="amqp://u:strong@h/",
            AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
            AWS_SECRET_ACCESS_KEY="minioadmin",
        )
    ok = CommonSettings(
        MPR_ENV="production",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY="a-real-secret",
        AMQP_URL="amqp://mpr:a-real-password@rabbit:5672/",
        S3_ENDPOINT_URL="",
    )
    assert ok.s3_endpoint_url is None  # empty means real AWS
    iam = CommonSettings(
        MPR_ENV="production", AWS_ACCESS_KEY_ID="", AMQP_URL="amqp://mpr:a-real-password@r/"
    )
    assert iam.aws_access_key_id is None  # boto3's credential chain (IAM role)


def test_database_urls_get_async_drivers():
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_database_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
    assert CommonSettings().async_database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize(
    ("command", "body", "problem"),
    [
        (ScanBucket, {}, "prefix"),  # garbage on catalog.scan must not scan the bucket
        (ScanBucket, {"prefix": "", "bucket": "other"}, "bucket"),
        (CancelJob, {"job_id": str(uuid.uuid4()), "force": True}, "force"),
        (CancelJob, {"reason": "x"}, "job_id"),
    ],
)
def test_commands_require_their_fields_and_refuse_unknown_ones(command, body, problem):
    with pytest.raises(ValidationError, match=problem):
        command.model_validate(body)


def test_events_are_tolerant_readers():
    body = {"job_id": str(uuid.uuid4()), "worker": "w", "added_later": 1}
    event = JobStarted.model_validate(body)
    assert event.worker == "w" and event.schema_version == 1


def test_database_role_is_an_identifier_or_unset():
    assert CommonSettings(DATABASE_ROLE="").database_role is None
    assert CommonSettings(DATABASE_ROLE="mpr_gateway").database_role == "mpr_gateway"
    with pytest.raises(ValidationError, match="DATABASE_ROLE"):
        CommonSettings(DATABASE_ROLE='x"; DROP TABLE jobs')
