"""The Lambda image's command, run for real: the AWS Lambda runtime interface client
(``python -m awslambdaric mpr_transcoder.lambda_handler.handler``) against a Lambda Runtime API
this test serves on 127.0.0.1, with temporary credentials (a session token) on S3 emulated by
moto's server (the local S3 server refuses session tokens), FFmpeg on a generated clip, and
the signed callbacks received on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from mpr_shared.contracts import JobCompleted
from tests.integration.transcoder.test_lambda import SECRET, Receiver, event_for
from tests.support.media import make_video
from tests.support.moto import moto_server

API = "/2018-06-01/runtime"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEROLEKEY01",
    "AWS_SECRET_ACCESS_KEY": "role-secret-" + "x" * 28,
    "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEXAMPLE" + "t" * 40,
}


class RuntimeApi:
    """The Lambda Runtime API, reduced to one invocation: /next hands out ``event`` once, then
    holds the client's next poll until the test ends; /response and /error are recorded."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.results: list[tuple[str, dict[str, Any]]] = []
        self.answered = threading.Event()
        self.closing = threading.Event()
        served = threading.Lock()
        handed_out: list[bool] = []
        outer = self

        class Handle(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self.send_error(404)
                    return
                with served:
                    first = not handed_out
                    handed_out.append(True)
                if not first:
                    outer.closing.wait(120)  # the next invocation never comes
                    self.send_error(503)
                    return
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", "req-rie-1")
                deadline = int((time.time() + 300) * 1000)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
                arn = "arn:aws:lambda:us-east-1:123456789012:function:mpr-transcoder"
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", arn)
                # Every header the runtime API sends: the client's native part needs them all.
                for name, value in (
                    ("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
                    ("Lambda-Runtime-Client-Context", ""),
                    ("Lambda-Runtime-Cognito-Identity", ""),
                    ("Lambda-Runtime-Aws-Tenant-Id", ""),
                    ("Lambda-Runtime-Invocation-Id", "invocation-1"),
                    ("Content-Type", "application/json"),
                ):
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                outer.results.append((self.path, payload))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                outer.answered.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"


@pytest.fixture
def moto_s3() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def test_the_runtime_interface_client_runs_the_handler_with_a_session_token(
    moto_s3: str, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", **_boto(CREDENTIALS))
    env = {"S3_BUCKET_IN": "lambda-in", "S3_BUCKET_OUT": "lambda-out"}
    for bucket in env.values():
        s3.create_bucket(Bucket=bucket)
    clip = make_video(tmp_path / "clip.mp4", seconds=1, size="160x90")
    s3.upload_file(str(clip), "lambda-in", "in/clip.mp4")
    receiver = Receiver(SECRET)
    receiver.thread.start()
    event = event_for(env, receiver, kind="audio")
    runtime = RuntimeApi(event)
    runtime.thread.start()
    lambda_env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        **env,
        **CREDENTIALS,
        "MPR_ENV": "production",  # as deployed: no development defaults
        "AMQP_URL": "amqp://lambda:unused-by-the-lambda@127.0.0.1:5672/",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "S3_ENDPOINT_URL": moto_s3,
        "MPR_CALLBACK_SECRET": SECRET,
        "LAMBDA_WORK_DIR": str(tmp_path / "lambda-tmp"),
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "AWS_LAMBDA_FUNCTION_NAME": "mpr-transcoder",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "awslambdaric", "mpr_transcoder.lambda_handler.handler"]
    process = subprocess.Popen(
        command, env=lambda_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        answered = runtime.answered.wait(60)
    finally:
        runtime.closing.set()
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")
        runtime.server.shutdown()
        receiver.server.shutdown()
    assert answered, f"the runtime client never answered the invocation:\n{output[-3000:]}"

    [(path, result)] = runtime.results
    assert path == f"{API}/invocation/req-rie-1/response", (result, output[-3000:])
    assert result["type"] == "JobCompleted", result
    assert receiver.rejected == 0
    assert receiver.types()[0] == "JobStarted" and receiver.types()[-1] == "JobCompleted"
    assert receiver.received[0][1]["data"]["worker"] == "lambda:req-rie-1"
    (output_file,) = JobCompleted.model_validate(receiver.received[-1][1]["data"]).outputs
    head = s3.head_object(Bucket=output_file.bucket, Key=output_file.key)
    assert head["ContentLength"] == output_file.size_bytes > 0


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in credentials.items()}
