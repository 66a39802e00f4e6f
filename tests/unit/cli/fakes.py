"""A fake gateway, notifier and S3 server behind one httpx.MockTransport, for the CLI's tests."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

GATEWAY = "http://gateway.test"
NOTIFIER = "http://notifier.test"
S3 = "http://s3.test"
KEY = "test-key-0123456789"


def job_body(**overrides: Any) -> dict[str, Any]:
    job_id = str(overrides.pop("id", None) or uuid.uuid4())
    return {
        "id": job_id,
        "asset_id": None,
        "source_bucket": "in",
        "source_key": "clip.mp4",
        "kind": "transcode",
        "preset": "h264-480p",
        "spec": {"kind": "transcode", "preset": "h264-480p"},
        "output_bucket": "out",
        "output_key": f"clip/{job_id}/h264-480p.mp4",
        "priority": 0,
        "status": "queued",
        "attempt": 1,
        "progress": 0.0,
        "worker": None,
        "error": None,
        "error_lines": None,
        "outputs": [],
        "webhook_url": None,
        "created_at": "2026-11-30T21:00:00Z",
        "updated_at": "2026-11-30T21:00:00Z",
        "started_at": None,
        "finished_at": None,
        **overrides,
    }


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\nid: {uuid.uuid4()}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class Fake:
    """Routes by host; records every request. Behaviour is switched by the attributes."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    part_size: int = 1024 * 1024
    threshold: int = 2 * 1024 * 1024
    fail_part: dict[int, int] = field(default_factory=dict)  # part number -> failures left
    sse_up: bool = True
    gateway_up: bool = True
    # What the job becomes once its SSE stream has been read (or on the nth GET when polling).
    finish_as: dict[str, Any] = field(default_factory=lambda: {"status": "completed"})
    gets_until_done: int = 2
    interrupt_on_get: int | None = None
    aborted: list[str] = field(default_factory=list)
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    probe_gets: int = 0  # GET /api/assets/{id} answers "pending" until this many
    probe_result: str = "ok"
    interrupt_part: int | None = None
    gets: int = 0
    # The stream starts once the client has re-read the job after subscribing, as in real life
    # where the job runs on after that read; without it, a reader thread could race ahead.
    reread: threading.Event = field(default_factory=threading.Event)
    streaming: bool = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = f"{request.url.scheme}://{request.url.host}"
        if host == S3:
            return self.s3(request)
        if host == NOTIFIER:
            return self.notifier(request)
        if not self.gateway_up:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.headers.get("X-API-Key") != KEY:
            return error(401, "unauthorized", "invalid API key; check MPR_API_KEYS on the gateway")
        return self.gateway(request)

    # ------------------------------------------------------------------ gateway

    def gateway(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else None
        if path == "/api/config":
            return httpx.Response(200, json={"events_url": NOTIFIER, "version": "test"})
        if path == "/api/presets":
            return httpx.Response(
                200, json=[{"name": "h264-480p", "kind": "transcode", "description": "H.264 480p"}]
            )
        if path == "/api/jobs" and method == "POST":
            if body.get("preset") == "nope":
                return error(422, "invalid_request", "unknown preset 'nope'")
            job = job_body(
                source_key=body.get("source_key") or "clip.mp4",
                asset_id=body.get("asset_id"),
                preset=body.get("preset"),
            )
            self.jobs[job["id"]] = job
            return httpx.Response(202, json=job)
        if path == "/api/jobs" and method == "GET":
            return httpx.Response(
                200, json={"items": list(self.jobs.values()), "next_cursor": None}
            )
        if path.startswith("/api/jobs/"):
            return self.job(request, path.split("/")[3], path.split("/")[4:])
        if path == "/api/uploads" and method == "POST":
            return self.new_upload(body)
        if path in PASSTHROUGH:
            return httpx.Response(200, json=PASSTHROUGH[path])
        if path.startswith("/api/assets/"):
            return self.asset(path.split("/")[3])
        if path.startswith("/api/uploads/"):
            return self.upload(request, path.split("/")[3], path.split("/")[4:], body)
        return error(404, "not_found", "no such endpoint")

    def job(self, request: httpx.Request, job_id: str, rest: list[str]) -> httpx.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return error(404, "not_found", f"no job {job_id}")
        if rest == ["cancel"]:
            job["status"] = "cancelled"
            return httpx.Response(202, json=job)
        if rest == ["retry"]:
            job.update(status="queued", attempt=job["attempt"] + 1)
            return httpx.Response(202, json=job)
        self.gets += 1
        if self.interrupt_on_get is not None and self.gets >= self.interrupt_on_get:
            raise KeyboardInterrupt
        if not self.sse_up and self.gets >= self.gets_until_done:
            self.finish(job_id)
        response = httpx.Response(200, json=job)
        if self.streaming:
            self.reread.set()
        return response

    def finish(self, job_id: str) -> None:
        job = self.jobs[job_id]
        job.update(
            self.finish_as, progress=100.0 if self.finish_as["status"] == "completed" else 40.0
        )
        if job["status"] == "completed" and not job["outputs"]:
            self.objects["clip/out.mp4"] = b"\x00" * 3000
            job["outputs"] = [output("clip/out.mp4", 3000)]

    def asset(self, asset_id: str) -> httpx.Response:
        asset = self.assets.get(asset_id)
        if asset is None:
            return error(404, "not_found", f"no asset {asset_id}")
        self.probe_gets += 1
        if self.probe_gets >= 3:
            failed = self.probe_result == "failed"
            asset.update(
                probe_status=self.probe_result,
                probe_error="moov atom not found" if failed else None,
            )
        return httpx.Response(200, json=asset)

    # ------------------------------------------------------------------ notifier

    def notifier(self, request: httpx.Request) -> httpx.Response:
        if not self.sse_up:
            raise httpx.ConnectError("connection refused", request=request)
        job_id = request.url.params["job_id"]
        self.streaming = True

        def stream() -> Iterator[bytes]:
            assert self.reread.wait(5)
            yield sse("job.started", {"type": "JobStarted", "job_id": job_id, "worker": "w1"})
            for percent in (25.0, 75.0):
                yield sse(
                    "job.progress",
                    {
                        "job_id": job_id,
                        "percent": percent,
                        "fps": 250.0,
                        "speed": 10.0,
                        "eta_seconds": 1.0,
                    },
                )
            self.finish(job_id)
            status = self.jobs[job_id]["status"]
            yield sse(f"job.{status}", {"job_id": job_id})

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream())

    # ------------------------------------------------------------------ uploads and S3

    def new_upload(self, body: dict[str, Any]) -> httpx.Response:
        key = body.get("key") or body["filename"]
        if key in self.objects and not body.get("overwrite"):
            return error(409, "conflict", f"{key} exists; pass overwrite to replace it")
        upload_id = str(uuid.uuid4())
        multipart = body["size"] > self.threshold
        count = -(-body["size"] // self.part_size)
        created = {
            "id": upload_id,
            "key": key,
            "bucket": "in",
            "size": body["size"],
            "mode": "multipart" if multipart else "single",
            "part_size": self.part_size if multipart else None,
            "url": None if multipart else f"{S3}/single/{upload_id}",
            "parts": [
                {"part_number": n, "url": f"{S3}/part/{upload_id}/{n}"} for n in range(1, count + 1)
            ]
            if multipart
            else [],
            "expires_at": "2026-12-01T00:00:00Z",
            "status": "pending",
            "received": {},
        }
        self.uploads[upload_id] = created
        return httpx.Response(201, json={k: v for k, v in created.items() if k != "received"})

    def upload(
        self, request: httpx.Request, upload_id: str, rest: list[str], body: Any
    ) -> httpx.Response:
        upload = self.uploads[upload_id]
        if request.method == "DELETE":
            self.aborted.append(upload_id)
            return httpx.Response(204)
        if rest == ["complete"]:
            received = upload["received"]
            if upload["mode"] == "multipart":
                etags = [p["etag"] for p in body["parts"]]
                numbers = [p["part_number"] for p in body["parts"]]
                assert numbers == sorted(received), numbers
                assert etags == [f'"etag-{n}"' for n in numbers], etags
            self.objects[upload["key"]] = b"".join(received[n] for n in sorted(received))
            done = {k: v for k, v in upload.items() if k != "received"}
            done |= {"status": "completed", "asset_id": str(uuid.uuid4())}
            self.assets[done["asset_id"]] = {
                "id": done["asset_id"],
                "key": upload["key"],
                "probe_status": "pending",
                "probe_error": None,
            }
            return httpx.Response(200, json=done)
        return error(404, "not_found", "no such endpoint")

    def s3(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET":
            key = request.url.params["key"]
            return httpx.Response(200, content=self.objects[key])
        assert "chunked" not in request.headers.get("transfer-encoding", "")
        data = request.read()
        assert int(request.headers["content-length"]) == len(data)
        if parts[0] == "single":
            self.uploads[parts[1]]["received"][1] = data
            return httpx.Response(200, headers={"ETag": '"etag-1"'})
        upload_id, number = parts[1], int(parts[2])
        if self.interrupt_part == number:
            raise KeyboardInterrupt
        if self.fail_part.get(number):
            self.fail_part[number] -= 1
            return httpx.Response(500, text="<Error>InternalError</Error>")
        self.uploads[upload_id]["received"][number] = data
        return httpx.Response(200, headers={"ETag": f'"etag-{number}"'})


# Answers the CLI passes through unchanged under --json.
PASSTHROUGH: dict[str, Any] = {
    "/api/workers": {
        "items": [
            {
                "id": "w1",
                "host": "h",
                "ffmpeg_version": "5.1",
                "current_job_id": None,
                "last_seen": "2026-11-30T21:00:00Z",
                "started_at": "2026-11-30T20:00:00Z",
                "status": "idle",
            }
        ]
    },
    "/api/queue": {
        "queue": "mpr.transcoder.jobs",
        "ready": 3,
        "unacked": 1,
        "consumers": 2,
        "jobs": {"queued": 3, "running": 1},
    },
    "/api/assets": {"items": [], "next_cursor": None},
    "/api/assets/scan": {
        "found": 2,
        "registered": 1,
        "skipped": 1,
        "files": ["a.mp4"],
        "updated": 0,
    },
}


def output(key: str, size: int) -> dict[str, Any]:
    return {
        "key": key,
        "bucket": "out",
        "size_bytes": size,
        "download_url": f"{S3}/get?key={quote(key)}",
        "probe": None,
    }


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message, "details": None}}
    )
