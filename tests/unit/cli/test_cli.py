"""The mpr CLI against a fake gateway, notifier and S3 (httpx.MockTransport): exit codes,
--json shapes, stdout/stderr, NO_COLOR, uploads part by part, downloads, config."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mpr_cli import app as cli
from mpr_cli import upload, watch
from mpr_cli.app import app
from tests.unit.cli.fakes import GATEWAY, KEY, NOTIFIER, Fake, job_body, output

ANSI = "\x1b["


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every variable the CLI reads, set or cleared; a fresh config directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("MPR_URL", GATEWAY)
    monkeypatch.setenv("MPR_API_KEY", KEY)
    for name in ("MPR_EVENTS_URL", "NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(watch, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(watch, "SETTLE_SECONDS", 0.01)
    monkeypatch.setattr(upload, "RETRY_BACKOFF", 0.01)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Fake:
    fake = Fake()
    monkeypatch.setattr(cli, "TRANSPORT", fake.transport())
    return fake


def run(fake: Fake, *args: str):
    return CliRunner().invoke(app, list(args))


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ----------------------------------------------------------------------------- errors


def test_missing_key_exits_2_with_one_line_and_no_request(fake, monkeypatch):
    monkeypatch.delenv("MPR_API_KEY")
    result = run(fake, "jobs", "ls")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert one_line(result.stderr).startswith("error: no API key: set MPR_API_KEY")
    assert fake.requests == []


def test_refused_key_exits_2_with_one_line(fake, monkeypatch):
    monkeypatch.setenv("MPR_API_KEY", "wrong")
    result = run(fake, "jobs", "ls", "--json")
    assert result.exit_code == 2
    assert "the API key was refused" in one_line(result.stderr)
    assert json.loads(result.stdout)["error"]["code"] == "unauthorized"


def test_unreachable_gateway_exits_2_naming_the_url(fake):
    fake.gateway_up = False
    result = run(fake, "presets", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert (
        line == f"error: cannot reach the MPR gateway at {GATEWAY}: [Errno 111] Connection refused"
    )


def test_an_api_refusal_is_shown_as_such(fake):
    result = run(fake, "jobs", "submit", "clip.mp4", "--preset", "nope", "--json")
    assert result.exit_code == 2
    assert one_line(result.stderr) == "error: unknown preset 'nope' (HTTP 422 invalid_request)"
    assert json.loads(result.stdout) == {
        "error": {"code": "invalid_request", "message": "unknown preset 'nope'", "details": None}
    }


def test_usage_error_exits_2(fake):
    result = run(fake, "jobs", "submit", "clip.mp4", "--kind", "juggle")
    assert result.exit_code == 2
    assert fake.requests == []


def test_unknown_job_exits_2(fake):
    result = run(fake, "jobs", "show", "6d1f3c38-0000-4000-8000-000000000000")
    assert result.exit_code == 2
    assert "HTTP 404 not_found" in one_line(result.stderr)


# ----------------------------------------------------------------------------- jobs


def test_show_json_is_the_job_exactly(fake):
    job = job_body(status="running", progress=12.5)
    fake.jobs[job["id"]] = job
    result = run(fake, "jobs", "show", job["id"], "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == job
    assert result.stderr == ""


def test_submit_prints_the_job_id_and_sends_key_or_asset(fake):
    by_key = run(fake, "jobs", "submit", "a/clip.mp4", "--preset", "h264-480p", "--priority", "5")
    assert by_key.exit_code == 0, by_key.stderr
    [job_id] = by_key.stdout.split()
    sent = json.loads(fake.requests[-1].content)
    assert sent == {
        "kind": "transcode",
        "preset": "h264-480p",
        "priority": 5,
        "source_key": "a/clip.mp4",
    }
    assert fake.requests[-1].headers["Idempotency-Key"]
    assert job_id in fake.jobs

    asset = "0b7c6f0e-1111-4222-8333-444455556666"
    args = ("--kind", "trim", "--start", "1", "--end", "2.5", "--mode", "accurate")
    assert run(fake, "jobs", "submit", asset, *args).exit_code == 0
    sent = json.loads(fake.requests[-1].content)
    assert sent == {
        "kind": "trim",
        "start": 1.0,
        "end": 2.5,
        "mode": "accurate",
        "priority": 0,
        "asset_id": asset,
    }


def test_submit_wait_json_follows_sse_and_prints_the_final_job(fake):
    result = run(fake, "jobs", "submit", "clip.mp4", "--preset", "h264-480p", "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    job = json.loads(result.stdout)
    assert job == next(iter(fake.jobs.values()))
    assert job["status"] == "completed" and job["outputs"][0]["key"] == "clip/out.mp4"
    assert "running on w1" in result.stderr
    assert "polling" not in result.stderr
    [events] = [r for r in fake.requests if r.url.host == "notifier.test"]
    assert events.url.params["job_id"] == job["id"]
    assert events.headers["X-API-Key"] == KEY


def test_watch_falls_back_to_polling_when_sse_is_unreachable(fake):
    fake.sse_up = False
    job = job_body(status="running")
    fake.jobs[job["id"]] = job
    result = run(fake, "jobs", "watch", job["id"])
    assert result.exit_code == 0, result.stderr
    assert "live events unavailable" in result.stderr and "polling" in result.stderr
    assert "clip/out.mp4" in result.stdout  # the outputs, for people


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_job_that_fails_or_is_cancelled_exits_1(fake, status):
    fake.finish_as = {
        "status": status,
        "error": "ffmpeg exited with 1",
        "error_lines": ["Invalid data found when processing input"],
    }
    result = run(fake, "jobs", "submit", "clip.mp4", "--wait", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == status
    assert f"{status}: ffmpeg exited with 1" in result.stderr
    assert "Invalid data found" in result.stderr


def test_ctrl_c_stops_watching_not_the_job(fake):
    job = job_body(status="running")
    fake.jobs[job["id"]] = job
    fake.sse_up = False
    fake.gets_until_done = 1000
    fake.interrupt_on_get = 3
    result = run(fake, "jobs", "watch", job["id"])
    assert result.exit_code == 130
    assert f"stopped watching; job {job['id']} goes on" in result.stderr
    assert not any(r.url.path.endswith("/cancel") for r in fake.requests)


def test_ls_json_is_the_page_and_the_table_is_for_people(fake):
    job = job_body(status="completed", progress=100.0)
    fake.jobs[job["id"]] = job
    as_json = run(fake, "jobs", "ls", "--status", "completed", "--json")
    assert json.loads(as_json.stdout) == {"items": [job], "next_cursor": None}
    assert fake.requests[-1].url.params["status"] == "completed"
    table = run(fake, "jobs", "ls")
    assert job["id"] in table.stdout and "completed" in table.stdout
    assert ANSI not in table.stdout  # not a terminal: no escapes


def test_no_color_turns_every_style_off(fake, monkeypatch):
    job = job_body(status="completed")
    fake.jobs[job["id"]] = job
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if on a terminal
    assert ANSI in run(fake, "jobs", "ls").stdout
    monkeypatch.setenv("NO_COLOR", "1")
    coloured_off = run(fake, "jobs", "ls")
    assert coloured_off.exit_code == 0
    assert ANSI not in coloured_off.stdout and ANSI not in coloured_off.stderr
    assert job["id"] in coloured_off.stdout


def test_markup_in_keys_is_printed_as_text(fake):
    job = job_body(source_key="[bold]x[/bold].mp4")
    fake.jobs[job["id"]] = job
    assert "[bold]x[/bold].mp4" in run(fake, "jobs", "ls").stdout


# ----------------------------------------------------------------------------- uploads


def test_multipart_upload_retries_a_failed_part_and_completes_in_order(fake, tmp_path):
    data = os.urandom(3 * fake.part_size + 12345)
    path = tmp_path / "big.mp4"
    path.write_bytes(data)
    fake.fail_part = {2: 2}  # part 2 fails twice, then succeeds
    result = run(fake, "upload", str(path), "media/big.mp4", "--json")
    assert result.exit_code == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["status"] == "completed" and done["key"] == "media/big.mp4"
    assert fake.objects["media/big.mp4"] == data
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert len(puts) == 4 + 2
    assert all("X-API-Key" not in r.headers for r in puts)  # the key never goes to S3
    [created] = [json.loads(r.content) for r in fake.requests if r.url.path == "/api/uploads"]
    assert created == {
        "filename": "big.mp4",
        "size": len(data),
        "content_type": "video/mp4",
        "overwrite": False,
        "key": "media/big.mp4",
    }


def test_single_put_upload(fake, tmp_path):
    path = tmp_path / "small.mp4"
    path.write_bytes(b"x" * 1000)
    result = run(fake, "upload", str(path))
    assert result.exit_code == 0, result.stderr
    assert fake.objects["small.mp4"] == b"x" * 1000
    assert "small.mp4" in result.stdout and "uploaded small.mp4" in result.stderr


def test_a_part_that_keeps_failing_aborts_the_upload(fake, tmp_path):
    path = tmp_path / "big.mp4"
    path.write_bytes(os.urandom(3 * fake.part_size))
    fake.fail_part = {1: 100}
    result = run(fake, "upload", str(path))
    assert result.exit_code == 2
    assert "part 1 of big.mp4 failed 4 times" in one_line(result.stderr)
    assert fake.aborted == list(fake.uploads)


def test_an_existing_key_is_refused_with_the_api_error(fake, tmp_path):
    fake.objects["clip.mp4"] = b"old"
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"new")
    result = run(fake, "upload", str(path), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "conflict"
    assert "(HTTP 409 conflict)" in one_line(result.stderr)
    assert run(fake, "upload", str(path), "--overwrite").exit_code == 0
    assert fake.objects["clip.mp4"] == b"new"


@pytest.mark.parametrize(("probe", "code"), [("ok", 0), ("failed", 1)])
def test_upload_watch_waits_for_the_probe(fake, tmp_path, monkeypatch, probe, code):
    monkeypatch.setattr(upload, "PROBE_POLL_SECONDS", 0.01)
    fake.probe_result = probe
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x" * 100)
    result = run(fake, "upload", str(path), "--watch", "--json")
    assert result.exit_code == code, result.stderr
    asset = json.loads(result.stdout)
    assert asset["probe_status"] == probe and fake.probe_gets == 3
    if probe == "failed":
        assert "the probe failed: moov atom not found" in result.stderr


def test_ctrl_c_during_an_upload_aborts_it(fake, tmp_path):
    path = tmp_path / "big.mp4"
    path.write_bytes(os.urandom(3 * fake.part_size))
    fake.interrupt_part = 2
    result = run(fake, "upload", str(path))
    assert result.exit_code == 130
    assert fake.aborted == list(fake.uploads)


def test_a_missing_file_exits_2(fake, tmp_path):
    result = run(fake, "upload", str(tmp_path / "nope.mp4"))
    assert result.exit_code == 2
    assert "cannot read" in one_line(result.stderr)


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["workers"], "/api/workers"),
        (["queue"], "/api/queue"),
        (["assets", "ls", "--prefix", "a/"], "/api/assets"),
        (["scan", "--prefix", "a/"], "/api/assets/scan"),
    ],
)
def test_json_is_the_api_answer_unchanged(fake, args, path):
    from tests.unit.cli.fakes import PASSTHROUGH

    result = run(fake, *args, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == PASSTHROUGH[path]
    people = run(fake, *args)
    assert people.exit_code == 0 and people.stdout.strip()


@pytest.mark.parametrize(("command", "status"), [("cancel", "cancelled"), ("retry", "queued")])
def test_cancel_and_retry(fake, command, status):
    job = job_body(status="failed" if command == "retry" else "running")
    fake.jobs[job["id"]] = job
    result = run(fake, "jobs", command, job["id"], "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == status
    assert fake.requests[-1].url.path == f"/api/jobs/{job['id']}/{command}"


# ----------------------------------------------------------------------------- downloads


def test_download_writes_every_output_and_keeps_hls_layout(fake, tmp_path):
    job = job_body(status="completed", kind="hls", output_key="clip/j/hls/")
    files = {"clip/j/hls/master.m3u8": b"#EXTM3U\n", "clip/j/hls/720p/seg0.ts": b"\x47" * 5000}
    fake.objects |= files
    job["outputs"] = [output(k, len(v)) for k, v in files.items()]
    fake.jobs[job["id"]] = job
    result = run(fake, "download", job["id"], "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.stderr
    written = json.loads(result.stdout)
    assert [w["key"] for w in written] == list(files)
    assert (tmp_path / "out" / "master.m3u8").read_bytes() == b"#EXTM3U\n"
    assert (tmp_path / "out" / "720p" / "seg0.ts").stat().st_size == 5000


def test_download_never_writes_outside_the_directory(fake, tmp_path):
    job = job_body(status="completed", output_key="x/")
    fake.objects["x/../../evil.mp4"] = b"boo"
    job["outputs"] = [output("x/../../evil.mp4", 3)]
    fake.jobs[job["id"]] = job
    assert run(fake, "download", job["id"], "-o", str(tmp_path / "d")).exit_code == 0
    assert (tmp_path / "d" / "evil.mp4").read_bytes() == b"boo"
    assert not (tmp_path / "evil.mp4").exists()


def test_download_of_a_failed_job_exits_1_and_of_a_running_one_2(fake):
    failed, running = job_body(status="failed"), job_body(status="running")
    fake.jobs |= {failed["id"]: failed, running["id"]: running}
    assert run(fake, "download", failed["id"]).exit_code == 1
    result = run(fake, "download", running["id"])
    assert result.exit_code == 2 and "is running" in result.stderr


# ----------------------------------------------------------------------------- config


def test_config_file_is_private_and_the_environment_wins(fake, monkeypatch, tmp_path):
    monkeypatch.delenv("MPR_API_KEY")
    monkeypatch.delenv("MPR_URL")
    assert run(fake, "config", "set", "api-key", KEY).exit_code == 0
    assert run(fake, "config", "set", "url", GATEWAY).exit_code == 0
    path = tmp_path / "config" / "mpr" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    presets = run(fake, "presets")
    assert presets.exit_code == 0, presets.stderr
    assert fake.requests[-1].headers["X-API-Key"] == KEY

    listed = json.loads(run(fake, "config", "list", "--json").stdout)
    assert {s["name"]: s["value"] for s in listed["settings"]} == {
        "url": GATEWAY,
        "api-key": "****" + KEY[-4:],
        "events-url": None,
    }
    monkeypatch.setenv("MPR_URL", "http://other.test")
    got = json.loads(run(fake, "config", "get", "url", "--json").stdout)
    assert got == {"name": "url", "value": "http://other.test", "source": "env MPR_URL"}


def test_events_url_comes_from_the_gateway_unless_set(fake, monkeypatch):
    job = job_body(status="running")
    fake.jobs[job["id"]] = job
    monkeypatch.setenv("MPR_EVENTS_URL", "http://elsewhere.test")
    fake.sse_up = False
    fake.gets_until_done = 3
    result = run(fake, "jobs", "watch", job["id"])  # elsewhere.test answers nothing: polls
    assert result.exit_code == 0
    assert "http://elsewhere.test/api/events" in result.stderr
    assert not any(r.url.path == "/api/config" for r in fake.requests)
    assert NOTIFIER  # the default case is test_submit_wait_json_follows_sse...
