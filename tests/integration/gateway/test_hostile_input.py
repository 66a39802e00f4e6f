"""Hostile requests against the real gateway (RabbitMQ, database, S3): every body gets a 4xx
that says what is wrong, never a 500, and nothing is written for a refused job."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.integration.gateway.conftest import (
    AUTH,
    Stack,
    gateway_settings,
    running_stack,
    stand_in_catalog,
)

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
DEEP_VARIABLES = json.dumps({"query": "{ presets { name } }"})[:-1] + (
    ', "variables": {"v": ' + "[" * 50_000 + "]" * 50_000 + "}}"
)
DEEP_QUERY = json.dumps({"query": "{" + "a {" * 50_000 + "b" + "}" * 50_001})
JSON = {**AUTH, "Content-Type": "application/json"}
# Bidirectional override and zero-width space: a key that reads as another.
SPOOFED = {"clip\u202e4pm.mp4": "U+202E RIGHT-TO-LEFT OVERRIDE", "cl\u200bip.mp4": "U+200B ZERO"}
CREATE = "mutation($input: JobInput!) { createJob(input: $input) { id } }"


async def post(stack: Stack, path: str, body: str) -> httpx.Response:
    return await stack.client.post(path, content=body.encode(), headers=JSON)


def graphql_error(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 400, response.text
    assert fragment in response.json()["errors"][0]["message"]


async def test_deep_json_bodies_get_400_on_graphql(stack: Stack):
    graphql_error(await post(stack, "/graphql", DEEP_ARRAY), "nested too deeply")
    graphql_error(await post(stack, "/graphql", DEEP_VARIABLES), "nested too deeply")
    graphql_error(await post(stack, "/graphql", DEEP_QUERY), "nested too deeply")
    ok = await stack.client.post("/graphql", json={"query": "{ presets { name } }"}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["data"]["presets"]  # still serving


async def test_deep_json_bodies_get_4xx_on_every_rest_endpoint(stack: Stack):
    some = uuid.uuid4()
    for path in (
        "/api/jobs",
        "/api/assets/scan",
        f"/api/jobs/{some}/cancel",
        f"/api/jobs/{some}/retry",
        f"/api/jobs/{some}/callback",
    ):
        response = await post(stack, path, DEEP_ARRAY)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert response.json()["error"]["message"], path  # the JSON error shape
    response = await post(stack, "/api/jobs", DEEP_ARRAY)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


async def test_spoofing_characters_in_keys_are_refused_on_rest(stack: Stack):
    await stack.add_asset("v/clip.mp4")
    for key, named in SPOOFED.items():
        for body in (
            {"source_key": key, "kind": "audio"},
            {"source_key": "v/clip.mp4", "kind": "audio", "output_key": f"out/{key[:-4]}.m4a"},
        ):
            response = await stack.client.post("/api/jobs", json=body, headers=AUTH)
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_request" and named in error["message"]
            assert key not in error["message"]  # the character is named, never echoed
    assert await stack.outbox() == []
    assert (await stack.client.get("/api/jobs", headers=AUTH)).json()["items"] == []


async def test_spoofing_characters_in_keys_are_refused_on_graphql(stack: Stack):
    await stack.add_asset("v/clip.mp4")
    for key, named in SPOOFED.items():
        for job in (
            {"sourceKey": key, "kind": "audio"},
            {"sourceKey": "v/clip.mp4", "kind": "audio", "outputKey": f"out/{key[:-4]}.m4a"},
        ):
            body = {"query": CREATE, "variables": {"input": job}}
            response = await stack.client.post("/graphql", json=body, headers=AUTH)
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "invalid_request" and named in error["message"]
    assert await stack.outbox() == []


async def test_a_job_on_an_asset_whose_probe_failed_is_refused_with_the_reason(stack: Stack):
    reason = "ffprobe: moov atom not found"
    asset_id = await stack.add_asset(
        "v/broken.mp4", duration=None, probe_status="failed", probe_error=reason
    )
    rest = await stack.client.post(
        "/api/jobs", json={"asset_id": str(asset_id), "kind": "audio"}, headers=AUTH
    )
    assert rest.status_code == 422, rest.text
    assert reason in rest.json()["error"]["message"]
    assert rest.json()["error"]["details"]["probe_error"] == reason
    body = {"query": CREATE, "variables": {"input": {"sourceKey": "v/broken.mp4", "kind": "audio"}}}
    [error] = (await stack.client.post("/graphql", json=body, headers=AUTH)).json()["errors"]
    assert error["extensions"]["code"] == "invalid_request" and reason in error["message"]
    assert await stack.outbox() == []


async def test_scans_are_rate_limited_per_client(service_env, database_url, buckets):
    settings = gateway_settings(
        service_env,
        database_url,
        SCAN_RATE_PER_MINUTE="2",
        MPR_API_KEYS="tester:test-key-0123456789,other:other-key-0123456789",
    )
    async for stack in running_stack(settings, buckets):
        async with stand_in_catalog(stack) as scans:
            for _ in range(2):
                assert (
                    await stack.client.post("/api/assets/scan", headers=AUTH)
                ).status_code == 200
            refused = await stack.client.post("/api/assets/scan", headers=AUTH)
            assert refused.status_code == 429, refused.text
            assert 0 < int(refused.headers["Retry-After"]) <= 30
            error = refused.json()["error"]
            assert error["code"] == "rate_limited" and "at most 2 a minute" in error["message"]
            mutation = {"query": "mutation { scanMediaFolder { found } }"}
            gql = await stack.client.post("/graphql", json=mutation, headers=AUTH)
            [gql_error] = gql.json()["errors"]
            assert gql_error["extensions"]["code"] == "rate_limited"
            assert gql_error["extensions"]["retryAfter"] > 0
            other = {"X-API-Key": "other-key-0123456789"}
            assert (await stack.client.post("/api/assets/scan", headers=other)).status_code == 200
            assert len(scans) == 3  # the refused ones never reached the catalog
