"""Extraction of FFmpeg's last meaningful error lines."""

from __future__ import annotations

from mpr_transcoder.domain.diagnostics import extract_error_lines, name_scratch_paths


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


def test_presigned_url_credentials_never_leave_the_worker():
    url = (
        "https://s3.local:9000/in/clips/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=minioadmin%2F20261125&X-Amz-Signature=0123abcd"
    )
    stderr = [
        f"[https @ 0x55] HTTP error 403 Forbidden for {url}",
        f"{url}: Server returned 403 Forbidden (access denied)",
        f"Error opening input file '{url}'.",
    ]
    lines = extract_error_lines(stderr)
    assert lines == [
        "[https @ 0x55] HTTP error 403 Forbidden for https://s3.local:9000/in/clips/a.mp4",
        "https://s3.local:9000/in/clips/a.mp4: Server returned 403 Forbidden (access denied)",
        "Error opening input file 'https://s3.local:9000/in/clips/a.mp4'.",
    ]
    assert not any("X-Amz" in line or "0123abcd" in line for line in lines)


def test_scratch_paths_become_the_source_and_the_output():
    scratch = "var/transcoder/vm-30945-0abcc9/job-1f2e3d"
    lines = [
        f"{scratch}/source.mp4: Invalid data found when processing input",
        f"[mp4 @ 0x55] Could not write header for output file #0 ({scratch}/output.mp4)",
        f"Error opening '{scratch}/hls/720p/segment_00001.ts' for writing",
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found",
    ]
    named = name_scratch_paths(lines, source=f"{scratch}/source.mp4", scratch=scratch)
    assert named == [
        "the source: Invalid data found when processing input",
        "[mp4 @ 0x55] Could not write header for output file #0 (the output)",
        "Error opening 'the output' for writing",
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found",
    ]


def test_a_presigned_source_url_is_the_source_too():
    url = "https://s3.internal:9000/in/a.mp4?X-Amz-Signature=0123"
    lines = extract_error_lines([f"{url}: Server returned 404 Not Found"])
    assert name_scratch_paths(lines, source=url, scratch="/w/job-1") == [
        "the source: Server returned 404 Not Found"
    ]


def test_log_tail_keeps_the_last_lines_bounded_and_unsigned():
    from mpr_transcoder.domain.diagnostics import log_tail

    lines = [f"line {i}" for i in range(30)] + ["", "from 'https://s3/x.mp4?X-Amz-Signature=abc':"]
    tail = log_tail([*lines, "y" * 900])
    assert len(tail) == 20 and tail[0] == "line 12"
    assert tail[-2] == "from 'https://s3/x.mp4':" and len(tail[-1]) == 500
