"""The Lambda handler run locally: real S3 and FFmpeg, a signed callback to a local receiver."""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mpr_shared.contracts import JobCompleted, JobFailed, JobSpec, ProcessMedia
from mpr_transcoder.adapters.callback import CallbackFailed
from mpr_transcoder.lambda_handler import handler
from tests.integration.transcoder.conftest import probe_json
from tests.support.media import make_video

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


class Receiver:
    """The gateway's callback endpoint, reduced to signature checking and recording."""

    def __init__(self, secret: str) -> None:
        self.received: list[tuple[str, dict]] = []
        self.rejected = 0
        outer = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    payload = Webhook(secret).verify(body, dict(self.headers))
                except WebhookVerificationError:
                    outer.rejected += 1
                    self.send_response(401)
                else:
                    outer.received.append((self.path, payload))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, job_id) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api/jobs/{job_id}/callback"

    def types(self) -> list[str]:
        return [payload["type"] for _, payload in self.received]


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    r.thread.start()
    yield r
    r.server.shutdown()


class Context:
    aws_request_id = "req-123"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def lambda_env(service_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    env = {**service_env, "MPR_CALLBACK_SECRET": SECRET, "LAMBDA_WORK_DIR": str(tmp_path / "t")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def event_for(env: dict, receiver: Receiver, **spec) -> dict:
    job_id = uuid4()
    job = ProcessMedia(
        job_id=job_id,
        correlation_id=str(job_id),
        source_bucket=env["S3_BUCKET_IN"],
        source_key="in/clip.mp4",
        spec=JobSpec(**spec),
        output_bucket=env["S3_BUCKET_OUT"],
        output_key=f"in/clip/{job_id}/h264-480p.mp4",
    )
    return {**json.loads(job.model_dump_json()), "callback_url": receiver.url(job_id)}


def test_the_handler_runs_the_job_and_calls_back_signed(lambda_env, receiver, s3_client, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", seconds=2, size="320x240")
    s3_client.upload_file(str(clip), lambda_env["S3_BUCKET_IN"], "in/clip.mp4")
    event = event_for(lambda_env, receiver, kind="transcode", preset="h264-480p")

    result = handler(event, Context())

    assert result["type"] == "JobCompleted"
    assert receiver.rejected == 0
    assert receiver.types()[0] == "JobStarted" and receiver.types()[-1] == "JobCompleted"
    assert all(path == f"/api/jobs/{event['job_id']}/callback" for path, _ in receiver.received)
    started = receiver.received[0][1]["data"]
    assert started["worker"] == "lambda:req-123"
    completed = JobCompleted.model_validate(receiver.received[-1][1]["data"])
    (output,) = completed.outputs
    local = tmp_path / "out.mp4"
    s3_client.download_file(output.bucket, output.key, str(local))
    video = next(s for s in probe_json(local)["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and video["height"] == 240
    assert list((tmp_path / "t").iterdir()) == []  # /tmp is left clean


def test_a_bad_input_is_reported_as_job_failed(lambda_env, receiver, s3_client):
    s3_client.put_object(Bucket=lambda_env["S3_BUCKET_IN"], Key="in/clip.mp4", Body=b"junk" * 100)
    result = handler(event_for(lambda_env, receiver, kind="audio"), Context())
    assert result["type"] == "JobFailed"
    failed = JobFailed.model_validate(receiver.received[-1][1]["data"])
    assert failed.reason.startswith("the source is not a decodable media file")
    assert failed.error_lines
    assert lambda_env["LAMBDA_WORK_DIR"] not in failed.reason + "".join(failed.error_lines)


def test_a_step_functions_catch_reports_the_crash(lambda_env, receiver):
    event = event_for(lambda_env, receiver, kind="audio")
    event["error"] = {"Error": "States.Timeout", "Cause": "Task timed out after 900 seconds"}
    assert handler(event, Context())["type"] == "JobFailed"
    (payload,) = [p for _, p in receiver.received]
    assert "States.Timeout" in payload["data"]["reason"] and payload["data"]["retryable"]


def test_an_unsigned_or_wrongly_signed_callback_fails_the_invocation(
    lambda_env, receiver, monkeypatch
):
    monkeypatch.setenv("MPR_CALLBACK_SECRET", "whsec_" + base64.b64encode(b"x" * 24).decode())
    event = event_for(lambda_env, receiver, kind="audio")
    event["error"] = {"Error": "boom"}
    with pytest.raises(CallbackFailed):
        handler(event, Context())
    assert receiver.rejected >= 1 and receiver.received == []
