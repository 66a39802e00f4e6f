"""Issue 14: 200 jobs through MPR on a 3-node RabbitMQ cluster whose job-queue leader dies.

The gateway, catalog, notifier and two transcoders run as processes, each given all three
nodes (AMQP_URL lists them) and QUEUE_TYPE=quorum, and each connected to the node leading
mpr.transcoder.jobs (the test moves their connections there). Once a fifth of the jobs
completed, that node is shut down: every service reconnects to another node, the queues
elect a new leader, and every job still completes once, with one output. The same jobs on
one node with classic queues give the throughput to compare with. Opt-in (``make
test-cluster``, 6-9 minutes on a busy 2-core machine): it would not fit CI's budget.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import httpx
import pytest

from mpr_shared.messaging import make_broker
from mpr_shared.settings import CommonSettings, QueueType
from mpr_shared.topology import EVENTS, TRANSCODER_JOBS, QueueTypeMismatch, declare_topology
from tests.e2e.conftest import API_KEY, e2e_env
from tests.support import rabbit_cluster
from tests.support.media import make_video
from tests.support.rabbit_cluster import Connection, Node, RabbitCluster
from tests.support.stack import Stack

JOBS = 200
STOP_AFTER = JOBS // 5
COMPLETED_QUEUE = "mpr.test.cluster.completed"
OURS = "mpr-cluster-test"
# One connection each: gateway, catalog, notifier and two transcoders.
SERVICE_CONNECTIONS = 5
# Seconds from the first POST to the last job completed, per run (the ratio in the output).
FIGURES: dict[str, float] = {}

# Three nodes start and cluster in ~20 s; 200 jobs take 2-4 minutes on a busy 2-core machine.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def opt_in(request: pytest.FixtureRequest) -> None:
    if "cluster" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the cluster tests run alone: make test-cluster")


@pytest.fixture(scope="module")
def cluster(opt_in: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    if why := rabbit_cluster.can_run():
        pytest.skip(why)
    nodes = RabbitCluster(tmp_path_factory.mktemp("rabbit-cluster"))
    try:
        yield nodes.start()
    finally:
        nodes.shutdown()


async def _declare_completed_queue(url: str) -> None:
    """A quorum queue of our own that keeps every JobCompleted, through the node's loss."""
    broker = make_broker(url, service=OURS.removeprefix("mpr-"))
    async with broker:
        await broker.connect()
        channel = await broker._connection.channel()  # type: ignore[union-attr]
        queue = await channel.declare_queue(
            COMPLETED_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(EVENTS.name, routing_key="job.completed")


async def _completed_per_job(url: str) -> Counter[str]:
    """How many JobCompleted each job published (every delivery, duplicates included)."""
    connection = await aio_pika.connect_robust(url)
    counts: Counter[str] = Counter()
    async with connection:
        queue = await (await connection.channel()).get_queue(COMPLETED_QUEUE)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            counts[json.loads(message.body)["job_id"]] += 1
    return counts


def _mpr_clients(cluster: RabbitCluster) -> list[Connection]:
    """The services' connections (not this test's)."""
    return [c for c in cluster.connections() if c.name.startswith("mpr-") and c.name != OURS]


def _herd_onto(cluster: RabbitCluster, node: Node, services: int) -> list[Connection]:
    """Close the services' connections elsewhere until every one reconnected to ``node``
    (each reconnect takes the next node of the client's list): the node's loss then leaves
    every service with a dead connection, the hardest case."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        clients = _mpr_clients(cluster)
        away = [c for c in clients if c.port != node.port]
        if len(clients) == services and not away:
            return clients
        for connection in away if len(clients) == services else ():
            cluster.close(connection)
        time.sleep(2.0)
    raise AssertionError(f"the services did not all reconnect to {node.name}: {clients}")


def _statuses(api: httpx.Client, ids: list[str]) -> Counter[str]:
    return Counter(api.get(f"/api/jobs/{job_id}").json()["status"] for job_id in ids)


def _wait(api: httpx.Client, ids: list[str], done: int, timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = _statuses(api, ids)
        finished = statuses["completed"] + statuses["failed"] + statuses["cancelled"]
        if finished >= done or time.monotonic() > deadline:
            return statuses
        time.sleep(1.0)


def _submit(api: httpx.Client) -> list[str]:
    """JOBS keyframe trims of clip.mp4, one in ten at a high priority; their ids."""
    ids = []
    for i in range(JOBS):
        created = api.post(
            "/api/jobs",
            json={
                "source_key": "clip.mp4",
                "kind": "trim",
                "start": 0,
                "end": 1,
                "mode": "copy",
                "output_key": f"cluster/{i:03d}.mp4",
                "priority": 7 if i % 10 == 0 else 0,
            },
        )
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])
    return ids


def _outputs(s3_client, bucket: str) -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="cluster/")
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _client(stack: Stack) -> httpx.Client:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    return httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30)


@pytest.fixture
def clip(s3_client, buckets, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", seconds=2, size="160x90")
    s3_client.upload_file(str(clip), buckets[0], "clip.mp4")


def test_baseline_one_node_with_classic_queues(
    opt_in: None, clip: None, service_env: dict, s3_client, buckets, tmp_path: Path
) -> None:
    """The same jobs on the machine's node (a vhost of their own) with classic queues."""
    env = e2e_env(service_env, tmp_path, QUEUE_TYPE="classic")
    stack = Stack(env=env, log_dir=tmp_path / "logs", transcoders=2)
    try:
        stack.start()
        with _client(stack) as api:
            started = time.monotonic()
            ids = _submit(api)
            statuses = _wait(api, ids, JOBS, timeout=400)
            FIGURES["baseline"] = time.monotonic() - started
        assert statuses == Counter({"completed": JOBS}), statuses
        assert _outputs(s3_client, buckets[1]) == [f"cluster/{i:03d}.mp4" for i in range(JOBS)]
        print(f"\n{JOBS} jobs, one node, classic queues: {FIGURES['baseline']:.1f} s")
    except BaseException:
        print(stack.all_logs())
        raise
    finally:
        stack.stop()


def test_jobs_survive_the_loss_of_the_job_queue_leader(
    cluster: RabbitCluster, clip: None, service_env: dict, s3_client, buckets, tmp_path: Path
) -> None:
    url = cluster.url()
    env = e2e_env(service_env, tmp_path, AMQP_URL=url, QUEUE_TYPE="quorum")
    stack = Stack(env=env, log_dir=tmp_path / "logs", transcoders=2)
    try:
        stack.start()
        asyncio.run(_declare_completed_queue(url))
        leader = cluster.leader(TRANSCODER_JOBS.name)
        clients = _herd_onto(cluster, leader, SERVICE_CONNECTIONS)
        with _client(stack) as api:
            started = time.monotonic()
            ids = _submit(api)
            before = _wait(api, ids, STOP_AFTER, timeout=120)
            assert cluster.leader(TRANSCODER_JOBS.name) == leader
            stopped_at = time.monotonic()
            cluster.stop(leader)
            print(
                f"\nstopped {leader.name}, the job queue's leader and every service's node, "
                f"after {dict(before)} ({stopped_at - started:.1f} s)"
            )
            statuses = _wait(api, ids, JOBS, timeout=400)
            elapsed = time.monotonic() - started
            new_leader = cluster.leader(TRANSCODER_JOBS.name)
            after = _mpr_clients(cluster)
        assert statuses == Counter({"completed": JOBS}), statuses
        assert new_leader.name != leader.name
        # Every service lost its node and is connected again, to a live one.
        assert sorted(c.name for c in after) == sorted(c.name for c in clients)
        assert leader.port not in {c.port for c in after}
        completed = asyncio.run(_completed_per_job(cluster.url([new_leader])))
        assert set(completed) == set(ids), "a job completed without its JobCompleted"
        assert [job for job, n in completed.items() if n != 1] == [], "a job ran twice"
        assert _outputs(s3_client, buckets[1]) == [f"cluster/{i:03d}.mp4" for i in range(JOBS)]
        ratio = f", {FIGURES['baseline'] / elapsed:.2f} x one node's" if FIGURES else ""
        print(
            f"{JOBS} jobs, 3 nodes, quorum queues, the leader's node lost: {elapsed:.1f} s "
            f"({elapsed - (stopped_at - started):.1f} s after the stop){ratio}"
        )
    except BaseException:
        print(stack.all_logs())
        raise
    finally:
        stack.stop()


async def _declare(url: str, queue_type: QueueType) -> None:
    broker = make_broker(url, service=OURS.removeprefix("mpr-"))
    try:
        await broker.connect()
        settings = CommonSettings(_env_file=None, AMQP_URL=url, QUEUE_TYPE=queue_type.value)
        await declare_topology(broker, settings)
    finally:
        await broker.stop()


def test_a_queue_type_the_broker_does_not_hold_stops_with_what_to_do(
    cluster: RabbitCluster,
) -> None:
    alive = [n for n in cluster.nodes if n.name not in cluster.stopped]
    url = cluster.url(alive)
    asyncio.run(_declare(url, QueueType.QUORUM))  # as the services left it
    with pytest.raises(QueueTypeMismatch) as stopped:
        asyncio.run(_declare(url, QueueType.CLASSIC))
    message = str(stopped.value)
    assert "QUEUE_TYPE=classic" in message
    assert "rabbitmqctl delete_queue" in message
    assert "PRECONDITION_FAILED" in message
