"""The Step Functions executor against Step Functions emulated by moto's server (127.0.0.1).

The gateway in-process on the real RabbitMQ and PostgreSQL: a stepfunctions job starts one
execution named after its attempt with the ProcessMedia plus the callback URL as input; a
replayed outbox row starts nothing new; a job accepted while AWS is unreachable starts once
it answers; cancel stops the execution; retry starts attempt 2; AWS refusing fails the job
with its error code; the Lambda's callbacks reach mpr.events once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from sqlalchemy import update

from mpr_gateway.domain.executors import execution_name
from mpr_shared.contracts import JobCompleted, JobStarted, OutputFile, ProcessMedia
from mpr_shared.db.models import GatewayOutbox
from mpr_shared.messaging import TYPE_HEADER
from mpr_shared.topology import EVENTS
from tests.integration.gateway.conftest import (
    AUTH,
    Stack,
    eventually,
    gateway_settings,
    running_stack,
)
from tests.integration.gateway.test_rest import signed
from tests.support.moto import moto_server

ROOT = Path(__file__).resolve().parents[3]
ASL = ROOT / "deploy" / "aws" / "transcoder-state-machine.asl.json"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:mpr-transcoder"
PUBLIC_URL = "https://mpr.example.com"
# The Step Functions tests run on PostgreSQL (production's database, its roles and SKIP LOCKED).
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def sfn(endpoint: str) -> Any:
    return boto3.client(
        "stepfunctions",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing-token",
    )


@pytest.fixture(scope="module")
def state_machine(moto_endpoint: str) -> str:
    """The repository's state machine definition, as deploy/aws/template.yaml fills it."""
    definition = ASL.read_text().replace("${TranscoderFunctionArn}", FUNCTION_ARN)
    created = sfn(moto_endpoint).create_state_machine(
        name=f"mpr-transcoder-{uuid.uuid4().hex[:8]}",
        definition=definition,
        roleArn="arn:aws:iam::123456789012:role/mpr-states",
        type="STANDARD",
    )
    return str(created["stateMachineArn"])


def sfn_env(endpoint: str, machine: str, **overrides: str) -> dict[str, str]:
    return {
        "EXECUTOR": "rabbitmq",
        "EXECUTORS_ALLOWED": "rabbitmq,stepfunctions",
        "STATE_MACHINE_ARN": machine,
        "PUBLIC_URL": PUBLIC_URL,
        "STEPFUNCTIONS_ENDPOINT_URL": endpoint,
        "LAMBDA_MAX_SOURCE_SECONDS": "60",
        **overrides,
    }


@pytest.fixture
async def stack(
    service_env: dict, database_url: str, buckets, moto_endpoint: str, state_machine: str
) -> AsyncIterator[Stack]:
    """The gateway allowing both executors (rabbitmq the default), Step Functions on moto."""
    settings = gateway_settings(service_env, database_url, **sfn_env(moto_endpoint, state_machine))
    async for s in running_stack(settings, buckets):
        yield s


def executions(endpoint: str, machine: str) -> dict[str, dict[str, Any]]:
    client = sfn(endpoint)
    listed = client.list_executions(stateMachineArn=machine)["executions"]
    return {e["name"]: client.describe_execution(executionArn=e["executionArn"]) for e in listed}


async def started(endpoint: str, machine: str, name: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        return (await asyncio.to_thread(executions, endpoint, machine)).get(name)

    return await eventually(check)


async def submit(stack: Stack, key: str, **body: Any) -> dict[str, Any]:
    await stack.add_asset(key, duration=body.pop("duration", 3.0))
    response = await stack.client.post(
        "/api/jobs", json={"source_key": key, "kind": "audio", **body}, headers=AUTH
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def post_callback(stack: Stack, job_id: uuid.UUID, event: Any) -> str:
    body, headers = signed(job_id, type(event).__name__, event)
    response = await stack.client.post(
        f"/api/jobs/{job_id}/callback", content=body, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


async def test_a_job_starts_one_execution_per_attempt_and_cancel_stops_it(
    stack: Stack, moto_endpoint: str, state_machine: str, listener
):
    job = await submit(stack, "sfn/clip.mp4", executor="stepfunctions")
    job_id = uuid.UUID(job["id"])
    assert (job["executor"], job["status"]) == ("stepfunctions", "queued")

    execution = await started(moto_endpoint, state_machine, execution_name(job_id, 1))
    payload = json.loads(execution["input"])
    assert payload.pop("callback_url") == f"{PUBLIC_URL}/api/jobs/{job_id}/callback"
    process = ProcessMedia.model_validate(payload)  # the handler's event, exactly
    assert (process.job_id, process.attempt, process.source_key) == (job_id, 1, "sfn/clip.mp4")
    assert execution["status"] == "RUNNING"

    # A replayed dispatch (a crash before the row was marked sent) starts nothing new.
    async with stack.sessions() as session:
        await session.execute(
            update(GatewayOutbox)
            .where(
                GatewayOutbox.message_type == "ProcessMedia",
                GatewayOutbox.target == "stepfunctions",
            )
            .values(published_at=None)
        )
        await session.commit()
    assert stack.container.executor_relay is not None
    stack.container.executor_relay.wake()

    async def dispatched_again() -> bool:
        rows = [r for r in await stack.outbox() if r.target == "stepfunctions"]
        return all(r.published_at is not None for r in rows)

    await eventually(dispatched_again)
    mine = [n for n in executions(moto_endpoint, state_machine) if n.startswith(str(job_id))]
    assert mine == [execution_name(job_id, 1)]
    # Nothing went to the transcoders over RabbitMQ.
    assert not [c for c in listener["commands"] if c[2]["job_id"] == str(job_id)]

    # Running on Lambda: cancel stops the execution, and the job is cancelled at once.
    assert await post_callback(stack, job_id, JobStarted(job_id=job_id, worker="lambda:r1")) == (
        "applied"
    )
    cancel = await stack.client.post(f"/api/jobs/{job_id}/cancel", headers=AUTH)
    assert cancel.status_code == 202 and cancel.json()["status"] == "cancelled"

    async def aborted() -> bool:
        found = await asyncio.to_thread(executions, moto_endpoint, state_machine)
        return found[execution_name(job_id, 1)]["status"] == "ABORTED"

    await eventually(aborted)
    # The Lambda's late report changes nothing.
    late = JobCompleted(job_id=job_id, outputs=[])
    assert await post_callback(stack, job_id, late) == "ignored"

    # Retry: attempt 2 is a new execution.
    retry = await stack.client.post(f"/api/jobs/{job_id}/retry", headers=AUTH)
    assert retry.status_code == 202 and retry.json()["attempt"] == 2
    second = await started(moto_endpoint, state_machine, execution_name(job_id, 2))
    assert json.loads(second["input"])["attempt"] == 2

    async def cancelled_published() -> bool:
        keys = [
            (e[0], e[2]["attempt"]) for e in listener["events"] if e[2]["job_id"] == str(job_id)
        ]
        return ("job.cancelled", 1) in keys and ("job.queued", 2) in keys

    await eventually(cancelled_published)


async def test_a_job_accepted_while_aws_is_unreachable_starts_when_it_answers(
    service_env: dict, database_url: str, buckets, state_machine: str
):
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = sfn_env(endpoint, state_machine, EXECUTOR="stepfunctions")
    settings = gateway_settings(service_env, database_url, **env)
    async for stack in running_stack(settings, buckets):
        job = await submit(stack, "sfn/offline.mp4")  # EXECUTOR is stepfunctions
        job_id = uuid.UUID(job["id"])
        assert (job["executor"], job["status"]) == ("stepfunctions", "queued")
        relay = stack.container.executor_relay
        assert relay is not None
        with pytest.raises(Exception, match="Could not connect"):
            await relay.flush()  # nothing listens: the row stays pending

        # AWS comes back (moto's backends are per process: the state machine is there).
        with moto_server(port):
            relay.wake()
            execution = await started(endpoint, state_machine, execution_name(job_id, 1))
            assert json.loads(execution["input"])["job_id"] == str(job_id)


async def test_a_lambda_only_deployment_refuses_rabbitmq_and_fails_what_aws_refuses(
    service_env: dict, database_url: str, buckets, moto_endpoint: str, state_machine: str
):
    missing = state_machine.rsplit(":", 1)[0] + ":no-such-machine"
    env = sfn_env(moto_endpoint, missing, EXECUTOR="stepfunctions", EXECUTORS_ALLOWED="")
    settings = gateway_settings(service_env, database_url, **env)
    async for stack in running_stack(settings, buckets):
        job_id = uuid.UUID((await submit(stack, "sfn/refused.mp4"))["id"])
        relay = stack.container.executor_relay
        assert relay is not None

        job = await eventually(functools.partial(failed, stack, relay, job_id), every=0.0)
        assert "StateMachineDoesNotExist" in job["error"]
        assert job["attempt"] == 1
        await refuses_rabbitmq(stack)


async def refuses_rabbitmq(stack: Stack) -> None:
    """A Lambda-only deployment: a job asking for rabbitmq is 422 on REST and GraphQL."""
    body = {"source_key": "sfn/refused.mp4", "kind": "audio", "executor": "rabbitmq"}
    response = await stack.client.post("/api/jobs", json=body, headers=AUTH)
    assert response.status_code == 422
    assert "not allowed on this deployment; allowed: stepfunctions" in response.text
    mutation = "mutation($i: JobInput!) { createJob(input: $i) { id executor } }"
    asks = {"sourceKey": "sfn/refused.mp4", "kind": "audio"}
    given = asks | {"executor": "rabbitmq"}
    result = await stack.client.post(
        "/graphql", json={"query": mutation, "variables": {"i": given}}, headers=AUTH
    )
    assert "allowed: stepfunctions" in result.json()["errors"][0]["message"]
    created = await stack.client.post(
        "/graphql", json={"query": mutation, "variables": {"i": asks}}, headers=AUTH
    )
    assert created.json()["data"]["createJob"]["executor"] == "stepfunctions"


async def failed(stack: Stack, relay: Any, job_id: uuid.UUID) -> dict[str, Any] | None:
    with contextlib.suppress(Exception):  # refused: retried on the next pass, up to the budget
        await relay.flush()
    got = (await stack.client.get(f"/api/jobs/{job_id}", headers=AUTH)).json()
    return got if got["status"] == "failed" else None


async def test_lambda_callbacks_reach_mpr_events_once(stack: Stack, moto_endpoint: str):
    """The notifier's view: job.completed once on mpr.events, even when posted twice."""
    broker = RabbitBroker(stack.settings.amqp_url.get_secret_value())
    seen: list[tuple[str, str | None, str | None, dict[str, Any]]] = []
    done = asyncio.Event()
    queue = RabbitQueue(
        f"test.sfn.events.{uuid.uuid4().hex[:8]}", auto_delete=True, routing_key="job.*"
    )

    @broker.subscriber(queue, EVENTS)
    async def record(body: dict, message: RabbitMessage) -> None:
        raw = message.raw_message
        seen.append((raw.routing_key, raw.message_id, (raw.headers or {}).get(TYPE_HEADER), body))
        if raw.routing_key == "job.queued" and body["source_key"] == "sfn/sentinel.mp4":
            done.set()

    async with broker:
        await broker.start()
        job_id = uuid.UUID((await submit(stack, "sfn/events.mp4", executor="stepfunctions"))["id"])
        started_event = JobStarted(job_id=job_id, worker="lambda:r2")
        output = OutputFile(key="o/a.m4a", bucket=stack.bucket_out, size_bytes=10)
        completed = JobCompleted(job_id=job_id, outputs=[output], elapsed_seconds=2.0)
        assert await post_callback(stack, job_id, started_event) == "applied"
        assert await post_callback(stack, job_id, completed) == "applied"
        assert await post_callback(stack, job_id, completed) == "ignored"  # Lambda's retry
        # A later message through the same outbox: once it arrives, so has everything before.
        await submit(stack, "sfn/sentinel.mp4")
        await asyncio.wait_for(done.wait(), 20)

    mine = [s for s in seen if s[3].get("job_id") == str(job_id)]
    assert [s[0] for s in mine] == ["job.queued", "job.started", "job.completed"]
    _, message_id, message_type, body = mine[-1]
    assert (message_id, message_type) == (str(completed.id), "JobCompleted")
    assert JobCompleted.model_validate(body) == completed
    job = (await stack.client.get(f"/api/jobs/{job_id}", headers=AUTH)).json()
    assert (job["status"], job["worker"], job["progress"]) == ("completed", "lambda:r2", 100.0)


async def test_executors_the_deployment_does_not_allow_or_sources_too_long_are_422(stack: Stack):
    await stack.add_asset("sfn/long.mp4", duration=3720.0)
    await stack.add_asset("sfn/unprobed.mp4", duration=None)
    cases = [
        ({"source_key": "sfn/long.mp4", "executor": "stepfunctions"}, "the source lasts 3720 s"),
        ({"source_key": "sfn/unprobed.mp4", "executor": "stepfunctions"}, "duration is unknown"),
        ({"source_key": "sfn/long.mp4", "executor": "lambda"}, "executor"),
    ]
    for body, says in cases:
        response = await stack.client.post(
            "/api/jobs", json={**body, "kind": "audio"}, headers=AUTH
        )
        assert response.status_code == 422, response.text
        assert says in response.text
    too_long = await stack.client.post(
        "/api/jobs", json={**cases[0][0], "kind": "audio"}, headers=AUTH
    )
    assert "LAMBDA_MAX_SOURCE_SECONDS" in too_long.text and "use executor rabbitmq" in too_long.text
