"""Key rules, output-key layout and cursor encoding."""

from __future__ import annotations

from uuid import UUID

import pytest

from mpr_gateway.domain.cursor import decode_cursor, encode_cursor
from mpr_gateway.domain.errors import InvalidRequest
from mpr_gateway.domain.keys import check_key, check_output_key, default_output_key
from mpr_shared.contracts import JobKind

JOB = UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize("key", ["a.mp4", "dir/sub/clip.MOV", "with space/ü.mp3", "a..b.mp4"])
def test_valid_keys(key):
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "empty"),
        ("/abs.mp4", "start with '/'"),
        ("a/../b.mp4", "'..' segments"),
        ("..", "'..' segments"),
        ("a\nb.mp4", "control characters"),
        ("a\x00.mp4", "control characters"),
        ("é" * 513, "bytes in UTF-8"),  # 1026 bytes, 513 characters
        ("clip\u202e4pm.mp4", "U.202E RIGHT-TO-LEFT OVERRIDE"),  # mpr_shared.keys' rules
        ("cl\u200bip.mp4", "U.200B ZERO WIDTH SPACE"),
    ],
)
def test_invalid_keys_say_why(key, why):
    with pytest.raises(InvalidRequest, match=why):
        check_key(key)


def test_key_of_exactly_1024_bytes_is_fine():
    assert check_key("a" * 1024)


@pytest.mark.parametrize(
    ("source", "kind", "preset", "ext", "expected"),
    [
        ("v/a.mp4", JobKind.TRANSCODE, "h264-720p", ".mp4", f"v/a/{JOB}/h264-720p.mp4"),
        ("a.mkv", JobKind.TRIM, None, ".mkv", f"a/{JOB}/trim.mkv"),
        ("a.mp4", JobKind.AUDIO, "audio-mp3", ".mp3", f"a/{JOB}/audio-mp3.mp3"),
        ("x/a.mp4", JobKind.THUMBNAIL, "thumbnail-jpg", ".jpg", f"x/a/{JOB}/thumbnail-jpg.jpg"),
        ("a.mp4", JobKind.HLS, "hls-h264", ".m3u8", f"a/{JOB}/hls-h264/"),
        ("noext", JobKind.TRANSCODE, "h264-480p", ".mp4", f"noext/{JOB}/h264-480p.mp4"),
    ],
)
def test_default_output_key_layout(source, kind, preset, ext, expected):
    assert default_output_key(source, JOB, kind, preset, ext) == expected


def test_user_output_key_rules():
    assert check_output_key("out/x.mp4", JobKind.TRANSCODE, ".mp4") == "out/x.mp4"
    assert check_output_key("out/hls/", JobKind.HLS, ".m3u8") == "out/hls/"
    with pytest.raises(InvalidRequest, match="ending in '/'"):
        check_output_key("out/hls", JobKind.HLS, ".m3u8")
    with pytest.raises(InvalidRequest, match=r"must end in '\.mp4'"):
        check_output_key("out/x.webm", JobKind.TRANSCODE, ".mp4")
    with pytest.raises(InvalidRequest, match=r"'\.\.'"):
        check_output_key("../x.mp4", JobKind.TRANSCODE, ".mp4")


def test_cursor_round_trip_and_opacity():
    token = encode_cursor("jobs", ["2026-01-01T00:00:00+00:00", str(JOB)])
    assert "jobs" not in token and "=" not in token
    assert decode_cursor("jobs", token, 2) == ["2026-01-01T00:00:00+00:00", str(JOB)]


@pytest.mark.parametrize("token", ["", "garbage", "!!!", encode_cursor("assets", ["k", "i"])])
def test_foreign_or_corrupt_cursors_are_rejected(token):
    with pytest.raises(InvalidRequest, match="not a valid jobs cursor"):
        decode_cursor("jobs", token, 2)
