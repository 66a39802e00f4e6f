"""Every GraphQL query and mutation against the real stack; batching; depth/complexity limits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from tests.integration.gateway.conftest import AUTH, Stack


async def gql(stack: Stack, query: str, variables: dict | None = None, *, status: int = 200):
    response = await stack.client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=AUTH
    )
    assert response.status_code == status, response.text
    return response.json()


def data(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("errors"), result
    return result["data"]


CREATE = """
mutation Create($input: JobInput!, $key: String) {
  createJob(input: $input, idempotencyKey: $key) { id status attempt kind preset outputKey assetId }
}"""


async def test_queries_assets_asset_jobs_job_presets(stack: Stack):
    a = await stack.add_asset("g/a.mp4", duration=4.0)
    await stack.add_asset("g/b.mp3", media_type="audio")
    job = data(await gql(stack, CREATE, {"input": {"assetId": str(a), "kind": "thumbnail"}}))
    job_id = job["createJob"]["id"]
    assert job["createJob"]["preset"] == "thumbnail-jpg"

    assets = data(
        await gql(stack, '{ assets(type: "audio") { items { key mediaType } nextCursor } }')
    )
    assert assets["assets"] == {
        "items": [{"key": "g/b.mp3", "mediaType": "audio"}],
        "nextCursor": None,
    }

    page1 = data(await gql(stack, "{ assets(limit: 1) { items { key } nextCursor } }"))["assets"]
    page2 = data(
        await gql(
            stack,
            "query($c: String) { assets(limit: 1, cursor: $c) { items { key } } }",
            {"c": page1["nextCursor"]},
        )
    )["assets"]
    assert [page1["items"][0]["key"], page2["items"][0]["key"]] == ["g/a.mp4", "g/b.mp3"]

    asset = data(
        await gql(
            stack,
            "query($id: ID!) { asset(id: $id) { key durationSeconds probe jobs { id kind } } }",
            {"id": str(a)},
        )
    )["asset"]
    assert asset["durationSeconds"] == 4.0 and asset["probe"] == {"format": {"duration": 4.0}}
    assert asset["jobs"] == [{"id": job_id, "kind": "thumbnail"}]

    jobs = data(
        await gql(stack, '{ jobs(kind: "thumbnail") { items { id status asset { key } } } }')
    )
    assert jobs["jobs"]["items"] == [
        {"id": job_id, "status": "queued", "asset": {"key": "g/a.mp4"}}
    ]

    one = data(
        await gql(
            stack,
            "query($id: ID!) { job(id: $id) { id outputs { key downloadUrl } spec } }",
            {"id": job_id},
        )
    )["job"]
    assert one["outputs"] == [] and one["spec"] == {"kind": "thumbnail", "preset": "thumbnail-jpg"}

    presets = data(await gql(stack, '{ presets(kind: "hls") { name extension ladder { name } } }'))
    assert presets["presets"][0]["name"] == "hls-h264"
    assert [r["name"] for r in presets["presets"][0]["ladder"]] == ["1080p", "720p", "480p"]


async def test_errors_carry_code_and_fix(stack: Stack):
    missing = await gql(stack, "query($id: ID!) { job(id: $id) { id } }", {"id": str(uuid.uuid4())})
    [error] = missing["errors"]
    assert error["extensions"]["code"] == "not_found" and "no job" in error["message"]

    bad = await gql(stack, '{ jobs(status: "nope") { items { id } } }')
    assert bad["errors"][0]["extensions"]["code"] == "invalid_request"
    assert "status must be one of" in bad["errors"][0]["message"]

    invalid = await gql(stack, CREATE, {"input": {"sourceKey": "../x.mp4", "kind": "audio"}})
    assert "'..' segments" in invalid["errors"][0]["message"]
    unknown_kind = await gql(stack, CREATE, {"input": {"sourceKey": "x.mp4", "kind": "bake"}})
    assert unknown_kind["errors"][0]["extensions"]["code"] == "invalid_request"
    assert "kind" in unknown_kind["errors"][0]["message"]

    syntax = await gql(stack, "{ jobs { ", status=400)
    assert "Syntax Error" in syntax["errors"][0]["message"]
    unknown_field = await gql(stack, "{ nope }", status=400)
    assert "Cannot query field 'nope'" in unknown_field["errors"][0]["message"]


async def test_mutations_scan_create_cancel_retry(stack: Stack, catalog: list[str]):
    scan = data(await gql(stack, "mutation { scanMediaFolder { found registered skipped files } }"))
    assert scan["scanMediaFolder"] == {
        "found": 3,
        "registered": 1,
        "skipped": 2,
        "files": ["new.mp4"],
    }
    await stack.add_asset("m/clip.mp4")
    variables = {"input": {"sourceKey": "m/clip.mp4", "kind": "audio", "priority": 4}, "key": "k"}
    created = data(await gql(stack, CREATE, variables))["createJob"]
    again = data(await gql(stack, CREATE, variables))["createJob"]
    assert created["id"] == again["id"] and created["status"] == "queued"
    conflict = await gql(
        stack, CREATE, {**variables, "input": {**variables["input"], "priority": 1}}
    )
    assert conflict["errors"][0]["extensions"]["code"] == "conflict"

    ops = "mutation($id: ID!) { %s(id: $id) { id status attempt } }"
    cancelled = data(await gql(stack, ops % "cancelJob", {"id": created["id"]}))["cancelJob"]
    assert cancelled["status"] == "cancelled"
    retried = data(await gql(stack, ops % "retryJob", {"id": created["id"]}))["retryJob"]
    assert (retried["status"], retried["attempt"]) == ("queued", 2)
    twice = await gql(stack, ops % "retryJob", {"id": created["id"]})
    assert twice["errors"][0]["extensions"]["code"] == "conflict"
    # REST sees the same job: one application layer.
    rest = (await stack.client.get(f"/api/jobs/{created['id']}", headers=AUTH)).json()
    assert (rest["status"], rest["attempt"], rest["priority"]) == ("queued", 2, 4)


async def test_listing_jobs_with_assets_is_batched(stack: Stack):
    for i in range(6):
        asset_id = await stack.add_asset(f"n/{i}.mp4")
        for _ in range(2):
            created = await gql(
                stack, CREATE, {"input": {"assetId": str(asset_id), "kind": "audio"}}
            )
            data(created)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    # Reads may run on the SQLite reader engine; count statements on both.
    db = stack.container.db
    engines = [e for e in (db.engine.sync_engine, db.sqlite) if e]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        result = data(
            await gql(stack, "{ jobs(limit: 12) { items { id asset { key jobs { id } } } } }")
        )
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    items = result["jobs"]["items"]
    assert len(items) == 12 and all(len(j["asset"]["jobs"]) == 2 for j in items)
    selects = [  # the outbox relay polls on the same engine; it is not part of the request
        s for s in statements if s.lstrip().upper().startswith("SELECT") and "outbox" not in s
    ]
    assert len(selects) == 3, selects  # jobs page + assets batch + jobs-by-asset batch


async def test_depth_and_complexity_limits(stack: Stack):
    deep = "{ jobs { items { " + "asset { jobs { " * 6 + "id" + " } }" * 6 + " } } }"  # depth 14
    too_deep = await gql(stack, deep, status=400)
    assert any("exceeds maximum operation depth" in e["message"] for e in too_deep["errors"])
    heavy = "{ assets(limit: 200) { items { jobs(limit: 200) { outputs { key downloadUrl } } } } }"
    too_heavy = await gql(stack, heavy, status=400)
    assert "too complex" in too_heavy["errors"][0]["message"]
