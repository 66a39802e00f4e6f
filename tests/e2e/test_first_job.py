"""Issue 2's slice, all real: upload → scan → job → completed, seen over SSE."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse

from tests.e2e.conftest import API_KEY
from tests.support.media import ffprobe, make_video, stream


def _collect_sse(url: str, sink: list[dict], stop: threading.Event) -> None:
    with (
        httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as client,
        connect_sse(client, "GET", url, headers={"X-API-Key": API_KEY}) as source,
    ):
        for sse in source.iter_sse():
            if sse.data:
                sink.append({"event": sse.event, **json.loads(sse.data)})
            if stop.is_set():
                return


def test_upload_scan_transcode_download(stack, api, s3_client, buckets, tmp_path: Path):
    bucket_in, bucket_out = buckets
    clip = make_video(tmp_path / "clip.mp4", seconds=10, size="1280x720")
    s3_client.upload_file(str(clip), bucket_in, "uploads/my clip.mp4")

    events: list[dict] = []
    stop = threading.Event()
    listener = threading.Thread(
        target=_collect_sse,
        args=(f"{stack.notifier_url}/api/events", events, stop),
        daemon=True,
    )
    listener.start()
    time.sleep(0.5)

    scan = api.post("/api/assets/scan", json={})
    assert scan.status_code == 200, scan.text
    body = scan.json()
    assert body["found"] == 1 and body["registered"] == 1 and body["skipped"] == 0
    assert body["files"] == ["uploads/my clip.mp4"]
    assert api.post("/api/assets/scan").json()["skipped"] == 1

    created = api.post(
        "/api/jobs",
        json={"source_key": "uploads/my clip.mp4", "kind": "transcode", "preset": "h264-480p"},
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["status"] == "queued" and job["id"]

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{job['id']}").json()
        if job["status"] in {"completed", "failed", "cancelled"}:
            break
        time.sleep(0.5)
    assert job["status"] == "completed", job
    [output] = job["outputs"]
    assert output["size_bytes"] > 0
    # FFmpeg's own summary, as the transcoder saw it; the replica announced itself meanwhile.
    assert any("libx264" in line for line in job["log_tail"]), job["log_tail"]
    assert job["speed"] and job["fps"] and job["eta_seconds"] == 0.0, job
    [worker] = api.get("/api/workers").json()["items"]
    assert worker["id"] == job["worker"] and worker["ffmpeg_version"], worker
    queue = api.get("/api/queue").json()
    assert queue["consumers"] == 1 and queue["jobs"] == {"queued": 0, "running": 0}, queue
    stats = api.get("/api/stats").json()
    assert (stats["completed"], stats["bytes_out"]) == (1, output["size_bytes"]), stats
    assert stats["bytes_in"] == clip.stat().st_size and stats["median_speed"] == job["speed"]

    local = tmp_path / "out.mp4"
    s3_client.download_file(bucket_out, output["key"], str(local))
    assert local.stat().st_size == output["size_bytes"]
    probe = ffprobe(local)
    video = stream(probe, "video")
    assert video["codec_name"] == "h264" and video["height"] == 480
    assert stream(probe, "audio")["codec_name"] == "aac"
    assert abs(float(probe["format"]["duration"]) - 10.0) < 0.3

    deadline = time.monotonic() + 10
    wanted = {"job.queued", "job.started", "job.completed"}
    while time.monotonic() < deadline:
        seen = {e["event"] for e in events if e.get("job_id") == job["id"]}
        if wanted <= seen:
            break
        time.sleep(0.2)
    stop.set()
    seen = [e["event"] for e in events if e.get("job_id") == job["id"]]
    assert wanted <= set(seen), seen
    assert seen.index("job.started") < seen.index("job.completed")
