"""Every REST endpoint against the real RabbitMQ vhost, database (SQLite and PostgreSQL) and S3."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aio_pika
import httpx
from faststream.rabbit import RabbitBroker
from standardwebhooks import Webhook

from mpr_shared.contracts import JobCompleted, JobProgress, JobStarted, OutputFile
from mpr_shared.messaging import publish_event
from tests.integration.gateway.conftest import AUTH, CALLBACK_SECRET, Stack, eventually


def assert_error(response: httpx.Response, status: int, code: str, fragment: str = "") -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and fragment in error["message"], error
    return error


async def create(stack: Stack, **body) -> httpx.Response:
    return await stack.client.post("/api/jobs", json=body, headers=AUTH)


# ------------------------------------------------------------------ open endpoints and auth


async def test_health_ready_metrics_need_no_key(stack: Stack):
    health = await stack.client.get("/api/health")
    assert health.json() == {"service": "gateway", "status": "ok"}
    ready = await stack.client.get("/api/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["service"] == "gateway" and ready.json()["status"] == "ready"
    checks = ready.json()["checks"]
    assert {k: (v["ok"], v["critical"]) for k, v in checks.items()} == {
        "rabbitmq": (True, False),
        "database": (True, True),
        "s3": (True, False),
    }
    await stack.client.get("/api/jobs", headers=AUTH)
    metrics = (await stack.client.get("/metrics")).text
    assert 'mpr_gateway_http_requests_total{method="GET",route="/api/jobs",status="200"}' in metrics
    docs = await stack.client.get("/openapi.json")
    assert "/api/jobs/{job_id}/cancel" in docs.json()["paths"]
    assert (await stack.client.get("/docs")).status_code == 200


async def test_every_protected_endpoint_requires_a_key(stack: Stack):
    some = uuid.uuid4()
    for method, path in [
        ("POST", "/api/assets/scan"),
        ("GET", "/api/assets"),
        ("GET", f"/api/assets/{some}"),
        ("POST", "/api/jobs"),
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{some}"),
        ("POST", f"/api/jobs/{some}/cancel"),
        ("POST", f"/api/jobs/{some}/retry"),
        ("GET", "/api/presets"),
        ("POST", "/graphql"),
    ]:
        missing = await stack.client.request(method, path, json={})
        assert_error(missing, 401, "unauthorized", "missing API key")
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await stack.client.request(method, path, json={}, headers={"X-API-Key": "nope"})
        assert_error(wrong, 401, "unauthorized", "invalid API key")
    ok = await stack.client.get("/api/presets", headers={"X-API-Key": AUTH["Authorization"][7:]})
    assert ok.status_code == 200


async def test_graphiql_page_is_open(stack: Stack):
    page = await stack.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


# ------------------------------------------------------------------ presets and assets


async def test_presets(stack: Stack):
    all_presets = (await stack.client.get("/api/presets", headers=AUTH)).json()
    assert {"h264-720p", "hls-h264", "audio-aac", "thumbnail-jpg"} <= {
        p["name"] for p in all_presets
    }
    audio = (await stack.client.get("/api/presets?kind=audio", headers=AUTH)).json()
    assert {p["name"] for p in audio} == {"audio-aac", "audio-mp3"}
    bad = await stack.client.get("/api/presets?kind=nope", headers=AUTH)
    assert_error(bad, 422, "validation_error", "kind")


async def test_asset_listing_filters_and_cursor(stack: Stack):
    for key in ("a/one.mp4", "a/two.mp3", "b/three.mp4", "b/four_%.mov"):
        media = "audio" if key.endswith(".mp3") else "video"
        await stack.add_asset(key, media_type=media)
    await stack.add_asset("c/gone.mp4", status="deleted")

    async def keys(query: str) -> list[str]:
        response = await stack.client.get(f"/api/assets?{query}", headers=AUTH)
        assert response.status_code == 200, response.text
        return [a["key"] for a in response.json()["items"]]

    assert await keys("type=audio") == ["a/two.mp3"]
    assert await keys("prefix=b/") == ["b/four_%.mov", "b/three.mp4"]
    assert await keys("q=_%") == ["b/four_%.mov"]  # LIKE wildcards are literal
    assert await keys("status=deleted") == ["c/gone.mp4"]

    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await stack.client.get(f"/api/assets?{query}", headers=AUTH)).json()
        seen += [a["key"] for a in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == sorted(seen) and len(seen) == 5

    bad = await stack.client.get("/api/assets?cursor=bogus", headers=AUTH)
    assert_error(bad, 422, "invalid_request", "cursor")
    bad_prefix = await stack.client.get("/api/assets?prefix=../x", headers=AUTH)
    assert_error(bad_prefix, 422, "invalid_request", "'..'")


async def test_asset_detail_has_probe_and_jobs(stack: Stack):
    asset_id = await stack.add_asset("v/clip.mp4", duration=2.5)
    job = (await create(stack, asset_id=str(asset_id), kind="audio")).json()
    detail = await stack.client.get(f"/api/assets/{asset_id}", headers=AUTH)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["duration_seconds"] == 2.5 and body["probe"] == {"format": {"duration": 2.5}}
    assert [j["id"] for j in body["jobs"]] == [job["id"]]
    missing = await stack.client.get(f"/api/assets/{uuid.uuid4()}", headers=AUTH)
    assert_error(missing, 404, "not_found", "no asset")
    assert_error(
        await stack.client.get("/api/assets/not-a-uuid", headers=AUTH), 422, "validation_error"
    )


async def test_scan_goes_to_the_catalog_over_the_broker(stack: Stack, catalog: list[str]):
    response = await stack.client.post("/api/assets/scan", json={"prefix": "in/"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "found": 3,
        "registered": 1,
        "skipped": 2,
        "files": ["in/new.mp4"],
        "updated": 0,
    }
    no_body = await stack.client.post("/api/assets/scan", headers=AUTH)
    assert no_body.status_code == 200 and catalog == ["in/", ""]
    bad = await stack.client.post("/api/assets/scan", json={"prefix": "/abs"}, headers=AUTH)
    assert_error(bad, 422, "invalid_request", "must not start with '/'")


async def test_scan_without_a_catalog_is_503_with_retry_after(service_env, database_url, buckets):
    from tests.integration.gateway.conftest import gateway_settings, running_stack

    settings = gateway_settings(service_env, database_url, SCAN_TIMEOUT_SECONDS="0.5")
    async for stack in running_stack(settings, buckets):
        response = await stack.client.post("/api/assets/scan", headers=AUTH)
        error = assert_error(response, 503, "unavailable", "did not answer")
        assert int(response.headers["Retry-After"]) > 0 and error["details"] is None


# ------------------------------------------------------------------ jobs


async def test_create_job_commits_job_and_outbox_and_publishes(stack: Stack, listener):
    asset_id = await stack.add_asset("v/clip.mp4", duration=3.0)
    response = await create(
        stack,
        source_key="v/clip.mp4",
        kind="transcode",
        preset="h264-480p",
        priority=7,
        webhook_url="https://hooks.example/done",
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/api/jobs/{job['id']}"
    assert (job["status"], job["attempt"], job["progress"]) == ("queued", 1, 0.0)
    assert job["asset_id"] == str(asset_id) and job["webhook_url"] == "https://hooks.example/done"
    assert job["output_key"] == f"v/clip/{job['id']}/h264-480p.mp4"
    assert job["output_bucket"] == stack.bucket_out

    await eventually(lambda: _published(listener, job["id"]))
    [(key, priority, body)] = [c for c in listener["commands"] if c[2]["job_id"] == job["id"]]
    assert (key, priority) == ("job.run", 7)
    assert body["source_duration"] == 3.0 and body["output_key"] == job["output_key"]
    assert [e[0] for e in listener["events"] if e[2]["job_id"] == job["id"]] == ["job.queued"]
    rows = await stack.outbox()
    assert {r.message_type for r in rows} == {"ProcessMedia", "JobQueued"}
    # Persistent, with the outbox row's id as message id and the job as correlation id.
    sent = {p["message_id"]: p for p in listener["properties"]}
    for row in rows:
        assert sent[str(row.id)] == {
            "routing_key": row.routing_key,
            "delivery_mode": aio_pika.DeliveryMode.PERSISTENT,
            "message_id": str(row.id),
            "correlation_id": job["id"],
            "content_type": "application/json",
            "type": row.message_type,
        }

    async def all_marked_sent() -> bool:
        # The confirm arrives before the relay's UPDATE commits; wait for both.
        return all(r.published_at is not None for r in await stack.outbox())

    await eventually(all_marked_sent)


async def _published(listener, job_id: str) -> bool:
    return any(c[2]["job_id"] == job_id for c in listener["commands"]) and any(
        e[2]["job_id"] == job_id for e in listener["events"]
    )


async def test_create_job_validation_errors(stack: Stack, s3_client):
    await stack.add_asset("v/clip.mp4", duration=3.0)
    await stack.add_asset("s/song.mp3", media_type="audio")
    cases = [
        ({"source_key": "../x.mp4", "kind": "audio"}, 422, "'..' segments"),
        ({"source_key": "/x.mp4", "kind": "audio"}, 422, "must not start with '/'"),
        ({"source_key": "x\n.mp4", "kind": "audio"}, 422, "control characters"),
        ({"source_key": "a" * 1030 + ".mp4", "kind": "audio"}, 422, "bytes in UTF-8"),
        ({"source_key": "notes.txt", "kind": "audio"}, 422, "not a supported media file"),
        ({"source_key": "missing.mp4", "kind": "audio"}, 404, "no object 'missing.mp4'"),
        ({"asset_id": str(uuid.uuid4()), "kind": "audio"}, 404, "no asset"),
        (
            {"source_key": "v/clip.mp4", "kind": "audio", "preset": "h264-720p"},
            422,
            "valid presets: audio-aac, audio-mp3",
        ),
        ({"source_key": "v/clip.mp4", "kind": "trim", "start": 1, "end": 9}, 422, "past the end"),
        ({"source_key": "v/clip.mp4", "kind": "thumbnail", "at": 4}, 422, "past the end"),
        ({"source_key": "v/clip.mp4", "kind": "trim", "start": 2, "end": 1}, 422, "greater than"),
        ({"source_key": "s/song.mp3", "kind": "hls"}, 422, "needs a video source"),
        ({"source_key": "v/clip.mp4", "kind": "hls", "output_key": "out/x"}, 422, "ending in '/'"),
        ({"source_key": "v/clip.mp4", "kind": "transcode"}, 422, "needs a preset"),
    ]
    for body, status, fragment in cases:
        code = "not_found" if status == 404 else "invalid_request"
        assert_error(await create(stack, **body), status, code, fragment)
    for body, field in [
        ({"kind": "audio"}, "source_key"),
        ({"source_key": "v/clip.mp4", "kind": "nope"}, "kind"),
        ({"source_key": "v/clip.mp4", "kind": "audio", "priority": 10}, "priority"),
        ({"source_key": "v/clip.mp4", "kind": "audio", "bogus": 1}, "bogus"),
        ({"source_key": "v/clip.mp4", "kind": "audio", "webhook_url": "ftp://x"}, "webhook_url"),
    ]:
        error = assert_error(await create(stack, **body), 422, "validation_error")
        assert field in error["message"] or any(field in d["field"] for d in error["details"])
    # A real object that the catalog has not registered yet is accepted.
    s3_client.put_object(Bucket=stack.bucket_in, Key="loose/new.mov", Body=b"not really media")
    loose = await create(stack, source_key="loose/new.mov", kind="thumbnail", at=1.0)
    assert loose.status_code == 202 and loose.json()["asset_id"] is None


async def test_body_size_limit(stack: Stack):
    big = {"source_key": "x.mp4", "kind": "audio", "pad": "x" * (stack.settings.max_body_bytes + 1)}
    response = await create(stack, **big)
    error = assert_error(response, 413, "payload_too_large", "MAX_BODY_BYTES")
    assert error["details"] == {"max_bytes": stack.settings.max_body_bytes}


async def test_idempotency_key(stack: Stack):
    await stack.add_asset("v/clip.mp4")
    body = {"source_key": "v/clip.mp4", "kind": "audio", "preset": "audio-mp3"}
    headers = {**AUTH, "Idempotency-Key": "order-42"}
    first = await stack.client.post("/api/jobs", json=body, headers=headers)
    again = await stack.client.post("/api/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await stack.client.post("/api/jobs", json={**body, "priority": 5}, headers=headers)
    error = assert_error(other, 409, "conflict", "already used for a different request")
    assert error["details"]["job_id"] == first.json()["id"]
    listing = (await stack.client.get("/api/jobs", headers=AUTH)).json()
    assert len(listing["items"]) == 1
    assert len([r for r in await stack.outbox() if r.message_type == "ProcessMedia"]) == 1


async def test_job_listing_filters_and_cursor(stack: Stack):
    a = await stack.add_asset("v/a.mp4")
    b = await stack.add_asset("v/b.mp4")
    ids = []
    for asset_id, kind in [(a, "audio"), (a, "thumbnail"), (b, "audio"), (b, "audio"), (a, "hls")]:
        response = await create(stack, asset_id=str(asset_id), kind=kind)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    await stack.client.post(f"/api/jobs/{ids[0]}/cancel", headers=AUTH)

    async def listed(query: str) -> list[str]:
        response = await stack.client.get(f"/api/jobs?{query}", headers=AUTH)
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["items"]]

    assert await listed("") == ids[::-1]  # newest first
    assert await listed("kind=audio") == [ids[3], ids[2], ids[0]]
    assert await listed(f"asset_id={b}") == [ids[3], ids[2]]
    assert await listed("status=cancelled") == [ids[0]]
    assert await listed("status=queued&kind=hls") == [ids[4]]
    seen, cursor = [], None
    while True:
        page = (
            await stack.client.get(
                "/api/jobs?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=AUTH
            )
        ).json()
        seen += [j["id"] for j in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ids[::-1]
    for query, field in [("limit=0", "limit"), ("limit=201", "limit"), ("status=nope", "status")]:
        assert_error(
            await stack.client.get(f"/api/jobs?{query}", headers=AUTH),
            422,
            "validation_error",
            field,
        )
    assert_error(
        await stack.client.get("/api/jobs?cursor=xyz", headers=AUTH),
        422,
        "invalid_request",
        "cursor",
    )


async def test_lifecycle_from_broker_events_with_outputs(stack: Stack, s3_client):
    await stack.add_asset("v/clip.mp4")
    job = (await create(stack, source_key="v/clip.mp4", kind="audio")).json()
    job_id = uuid.UUID(job["id"])
    output_key = job["output_key"]
    s3_client.put_object(Bucket=stack.bucket_out, Key=output_key, Body=b"m4a bytes")

    transcoder = RabbitBroker(stack.settings.amqp_url.get_secret_value())
    await transcoder.connect()
    try:
        output = OutputFile(key=output_key, bucket=stack.bucket_out, size_bytes=9)
        started = JobStarted(job_id=job_id, worker="transcoder-1")
        # The gateway consumes concurrently, so these apply in any order; the result must not
        # depend on it: replays and late progress change nothing.
        for event in (
            started,
            JobProgress(job_id=job_id, percent=60.0),
            JobProgress(job_id=job_id, percent=30.0),
            JobCompleted(job_id=job_id, outputs=[output], elapsed_seconds=1.0),
            started,
        ):
            await publish_event(transcoder, event)
    finally:
        await transcoder.stop()

    async def completed() -> dict | None:
        body = (await stack.client.get(f"/api/jobs/{job_id}", headers=AUTH)).json()
        # JobStarted may apply after JobCompleted (concurrent consumers); it still names the worker.
        return body if body["status"] == "completed" and body["worker"] else None

    done = await eventually(completed)
    assert (done["progress"], done["worker"]) == (100.0, "transcoder-1")
    assert done["started_at"] and done["finished_at"]
    [out] = done["outputs"]
    assert (out["key"], out["size_bytes"]) == (output_key, 9)
    # The presigned URL really downloads the object.
    assert urlsplit(out["download_url"]).path.endswith(output_key)
    async with httpx.AsyncClient() as plain:
        download = await plain.get(out["download_url"])
    assert download.status_code == 200 and download.content == b"m4a bytes"
    metrics = (await stack.client.get("/metrics")).text
    assert 'mpr_gateway_job_events_total{outcome="applied",type="JobCompleted"} 1.0' in metrics
    assert 'mpr_gateway_job_events_total{outcome="ignored",type="JobStarted"} 1.0' in metrics
    assert 'mpr_gateway_jobs_created_total{kind="audio",origin="api"} 1.0' in metrics


async def test_cancel_and_retry(stack: Stack, listener):
    await stack.add_asset("v/clip.mp4")
    job = (await create(stack, source_key="v/clip.mp4", kind="audio")).json()
    cancelled = await stack.client.post(f"/api/jobs/{job['id']}/cancel", headers=AUTH)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = await stack.client.post(f"/api/jobs/{job['id']}/cancel", headers=AUTH)
    assert_error(again, 409, "conflict", "already cancelled")

    retried = await stack.client.post(f"/api/jobs/{job['id']}/retry", headers=AUTH)
    assert retried.status_code == 202, retried.text
    assert (retried.json()["status"], retried.json()["attempt"]) == ("queued", 2)
    assert_error(
        await stack.client.post(f"/api/jobs/{job['id']}/retry", headers=AUTH),
        409,
        "conflict",
        "only failed or cancelled",
    )

    async def commands() -> list | None:
        mine = [
            (c[0], c[2].get("attempt")) for c in listener["commands"] if c[2]["job_id"] == job["id"]
        ]
        return mine if len(mine) == 3 else None

    # The relay publishes a batch concurrently, so arrival order is not asserted.
    assert sorted(await eventually(commands), key=str) == sorted(
        [("job.run", 1), ("job.cancel", 1), ("job.run", 2)], key=str
    )
    events = [(e[0], e[2]["attempt"]) for e in listener["events"] if e[2]["job_id"] == job["id"]]
    assert ("job.cancelled", 1) in events and ("job.queued", 2) in events


async def test_unknown_jobs_are_404(stack: Stack):
    some = uuid.uuid4()
    for method, path in [
        ("GET", f"/api/jobs/{some}"),
        ("POST", f"/api/jobs/{some}/cancel"),
        ("POST", f"/api/jobs/{some}/retry"),
    ]:
        assert_error(await stack.client.request(method, path, headers=AUTH), 404, "not_found")
    assert_error(await stack.client.get("/api/nowhere", headers=AUTH), 404, "not_found", "/docs")


def signed(job_id, event_type: str, event) -> tuple[bytes, dict]:
    body = json.dumps({"type": event_type, "data": event.model_dump(mode="json")}).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    signature = Webhook(CALLBACK_SECRET).sign(msg_id, now, body.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return body, headers


async def test_lambda_callback_applies_events_like_the_broker(stack: Stack, listener):
    await stack.add_asset("v/clip.mp4")
    job = (await create(stack, source_key="v/clip.mp4", kind="audio")).json()
    job_id = uuid.UUID(job["id"])
    url = f"/api/jobs/{job_id}/callback"

    body, headers = signed(job_id, "JobStarted", JobStarted(job_id=job_id, worker="lambda"))
    applied = await stack.client.post(url, content=body, headers=headers)
    assert applied.status_code == 200 and applied.json() == {"outcome": "applied"}
    replay = await stack.client.post(url, content=body, headers=headers)
    assert replay.json() == {"outcome": "ignored"}
    running = (await stack.client.get(f"/api/jobs/{job_id}", headers=AUTH)).json()
    assert (running["status"], running["worker"]) == ("running", "lambda")

    # Cancelling a running job leaves it running and tells the transcoders to stop it.
    cancel = await stack.client.post(f"/api/jobs/{job_id}/cancel", headers=AUTH)
    assert cancel.status_code == 202 and cancel.json()["status"] == "running"

    async def cancel_sent() -> bool:
        return any(
            c[0] == "job.cancel" and c[2]["job_id"] == str(job_id) for c in listener["commands"]
        )

    await eventually(cancel_sent)

    tampered = body.replace(b"lambda", b"evil!!")
    assert_error(
        await stack.client.post(url, content=tampered, headers=headers),
        401,
        "unauthorized",
        "signature",
    )
    unsigned = await stack.client.post(
        url, content=body, headers={"content-type": "application/json"}
    )
    assert_error(unsigned, 401, "unauthorized")
    other = uuid.uuid4()
    body2, headers2 = signed(other, "JobStarted", JobStarted(job_id=other, worker="x"))
    assert_error(
        await stack.client.post(url, content=body2, headers=headers2),
        422,
        "invalid_request",
        "carries an event of job",
    )
    assert_error(
        await stack.client.post(f"/api/jobs/{other}/callback", content=body2, headers=headers2),
        404,
        "not_found",
    )
