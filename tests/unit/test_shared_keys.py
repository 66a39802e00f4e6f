"""S3 key rules and the S3Key / S3Prefix types every command uses."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from mpr_shared.contracts import CreateJob, JobSpec, ProcessMedia, ScanBucket
from mpr_shared.keys import InvalidKey, check_key, check_text, describe_code_point, is_valid_key


@pytest.mark.parametrize(
    ("key", "code_point", "what"),
    [
        ("clip\u202e4pm.mp4", "U+202E RIGHT-TO-LEFT OVERRIDE", "invisible formatting"),
        ("cl\u200bip.mp4", "U+200B ZERO WIDTH SPACE", "invisible formatting"),
        ("a\ufeffb.mp4", "U+FEFF ZERO WIDTH NO-BREAK SPACE", "invisible formatting"),
        ("a\u2028b.mp4", "U+2028 LINE SEPARATOR", "line separators"),
        ("a\u2029b.mp4", "U+2029 PARAGRAPH SEPARATOR", "paragraph separators"),
        ("a\ue000b.mp4", "U+E000 (private use)", "private-use"),
        ("a\U000f0000.mp4", "U+F0000 (private use)", "private-use"),
        ("a\ufdd0.mp4", "U+FDD0", "noncharacters"),
        ("a\uffff.mp4", "U+FFFF", "noncharacters"),
        ("a\U0010fffe.mp4", "U+10FFFE", "noncharacters"),
        ("a\nb.mp4", "U+000A (control character)", "control characters"),
        ("a\x00.mp4", "U+0000 (control character)", "control characters"),
        ("a\ud800.mp4", "U+D800 (surrogate)", "lone surrogates"),
    ],
)
def test_hidden_characters_are_refused_by_code_point(key: str, code_point: str, what: str):
    with pytest.raises(InvalidKey) as err:
        check_key(key, "output_key")
    message = str(err.value)
    assert message.startswith("output_key must not contain") and what in message
    assert code_point in message
    assert message.isprintable()  # the raw character is never echoed
    assert not is_valid_key(key)


@pytest.mark.parametrize("key", ["a.mp4", "dir/ü/clip (1).MOV", "日本/動画.mp4", "a..b.mp4", "x/"])
def test_ordinary_keys_pass(key: str):
    assert check_key(key) == key and is_valid_key(key)


def test_structure_rules_and_length():
    for key, why in [("/a.mp4", "start with '/'"), ("a/../b", "'..' segments"), ("", "empty")]:
        with pytest.raises(InvalidKey, match=why):
            check_key(key)
    assert check_key("a" * 1024)
    with pytest.raises(InvalidKey, match="1026 bytes"):
        check_key("é" * 513)
    assert check_key("", allow_empty=True) == ""


def test_free_text_only_refuses_what_no_store_can_carry():
    assert check_text("clip\u200b", "q") == "clip\u200b"  # search text is not a key
    with pytest.raises(InvalidKey, match="q must not contain control characters"):
        check_text("a\tb", "q")


def test_code_points_are_described_without_the_character():
    assert describe_code_point("\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE"
    assert describe_code_point("\x1b") == "U+001B (control character)"


def _process(**fields: str) -> dict:
    body = {
        "job_id": str(uuid.uuid4()),
        "source_bucket": "in",
        "source_key": "a.mp4",
        "spec": {"kind": "audio"},
        "output_bucket": "out",
        "output_key": "a/audio.m4a",
    }
    return body | fields


@pytest.mark.parametrize("field", ["source_key", "output_key"])
def test_every_command_key_field_refuses_hidden_characters(field: str):
    with pytest.raises(ValidationError, match=rf"{field} must not contain .*U\+202E"):
        ProcessMedia.model_validate(_process(**{field: "clip\u202e4pm.mp4"}))
    create = {"source_bucket": "in", "source_key": "a\u200b.mp4", "spec": {"kind": "audio"}}
    create |= {"idempotency_key": "k", "requested_by": "test"}
    with pytest.raises(ValidationError, match=r"source_key must not contain .*U\+200B"):
        CreateJob.model_validate(create)
    with pytest.raises(ValidationError, match="prefix must not start with '/'"):
        ScanBucket(prefix="/videos")
    assert ScanBucket(prefix="").prefix == ""  # the whole bucket
    assert ProcessMedia.model_validate(_process()).spec == JobSpec(kind="audio")
