"""Extraction of FFmpeg's last meaningful error lines."""

from __future__ import annotations

from mpr_transcoder.errors import extract_error_lines


def test_keeps_the_lines_that_explain_the_failure():
    stderr = [
        "",
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found",
        "/tmp/job/source.mp4: Invalid data found when processing input",
        "Conversion failed!",
    ]
    assert extract_error_lines(stderr) == [
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found",
        "/tmp/job/source.mp4: Invalid data found when processing input",
    ]


def test_deduplicates_keeps_newest_and_limits():
    stderr = [f"Error while decoding frame {i}" for i in range(10)] + [
        "Error while decoding frame 9"
    ]
    lines = extract_error_lines(stderr, limit=3)
    assert lines == [
        "Error while decoding frame 7",
        "Error while decoding frame 8",
        "Error while decoding frame 9",
    ]


def test_falls_back_to_the_last_lines_when_nothing_looks_like_an_error():
    assert extract_error_lines(["a", "b", "c"], limit=2) == ["b", "c"]
    assert extract_error_lines([]) == []
