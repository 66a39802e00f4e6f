"""QUEUE_TYPE's queue arguments and AMQP_URL's list of nodes, without a broker."""

from __future__ import annotations

import pytest
from yarl import URL

from mpr_shared.amqp_nodes import NodeRing, RotatingConnection, amqp_nodes
from mpr_shared.messaging import ClusterBroker, make_broker
from mpr_shared.settings import CommonSettings, QueueType
from mpr_shared.topology import (
    DEAD_LETTER,
    MAX_JOB_PRIORITY,
    TRANSCODER_JOBS,
    as_queue_type,
    dead_letter_queue,
    live_queue,
)

pytestmark = pytest.mark.unit


def test_queue_type_is_classic_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEUE_TYPE", raising=False)
    assert CommonSettings(_env_file=None).queue_type is QueueType.CLASSIC
    monkeypatch.setenv("QUEUE_TYPE", "quorum")
    assert CommonSettings(_env_file=None).queue_type is QueueType.QUORUM
    monkeypatch.setenv("QUEUE_TYPE", "mirrored")
    with pytest.raises(ValueError, match="QUEUE_TYPE"):
        CommonSettings(_env_file=None)


def test_classic_jobs_keep_ten_priorities_and_their_dead_letter_exchange() -> None:
    queue = as_queue_type(TRANSCODER_JOBS, QueueType.CLASSIC)
    assert queue.declare and queue.durable
    assert queue.arguments == {
        "x-queue-type": "classic",
        "x-max-priority": MAX_JOB_PRIORITY,
        "x-dead-letter-exchange": DEAD_LETTER.name,
        "x-dead-letter-routing-key": TRANSCODER_JOBS.name,
    }


def test_quorum_jobs_have_a_delivery_limit_and_at_least_once_dead_lettering() -> None:
    queue = as_queue_type(TRANSCODER_JOBS, QueueType.QUORUM)
    assert queue.declare and queue.durable
    assert queue.routing_key == TRANSCODER_JOBS.routing_key
    # No x-max-priority: RabbitMQ 4 quorum queues have two levels built in (priority > 4 is
    # high), and RabbitMQ refuses the argument on a quorum queue.
    assert queue.arguments == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER.name,
        "x-dead-letter-routing-key": TRANSCODER_JOBS.name,
        "x-delivery-limit": 20,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_quorum_dead_letter_queues_are_replicated_too() -> None:
    dlq = as_queue_type(dead_letter_queue(TRANSCODER_JOBS), QueueType.QUORUM)
    assert dlq.arguments == {"x-queue-type": "quorum"}


def test_subscribers_only_check_durable_queues_and_own_their_live_ones() -> None:
    # declare_topology alone declares a durable queue, with QUEUE_TYPE's arguments.
    assert not TRANSCODER_JOBS.declare
    live = live_queue("transcoder", "r1", "job.cancel")
    assert live.declare and live.exclusive and not live.durable
    assert (live.arguments or {})["x-queue-type"] == "classic"


@pytest.mark.parametrize(
    ("url", "nodes"),
    [
        ("amqp://u:p@rabbit:5672/", ("amqp://u:p@rabbit:5672/",)),
        (
            "amqp://u:p%2C@a:5701,b:5702, c/v?heartbeat=10",
            (
                "amqp://u:p%2C@a:5701/v?heartbeat=10",
                "amqp://u:p%2C@b:5702/v?heartbeat=10",
                "amqp://u:p%2C@c/v?heartbeat=10",
            ),
        ),
        ("amqps://h1,h2/", ("amqps://h1/", "amqps://h2/")),
    ],
)
def test_amqp_url_may_list_a_clusters_nodes(url: str, nodes: tuple[str, ...]) -> None:
    assert amqp_nodes(url) == nodes


def test_each_connection_attempt_takes_the_next_node() -> None:
    urls = ("amqp://a/", "amqp://b/", "amqp://c/")
    ring = NodeRing(urls)
    taken = [str(ring.next()) for _ in range(6)]
    assert set(taken[:3]) == set(urls)  # a random start, then every node in turn
    assert taken[3:] == taken[:3]


async def test_a_cluster_url_makes_a_broker_whose_connection_rotates() -> None:
    broker = make_broker("amqp://u:p@a:5701,b:5702/", service="test")
    assert isinstance(broker, ClusterBroker)
    connection_class = broker._connection_kwargs["connection_class"]
    assert issubclass(connection_class, RotatingConnection)
    seen = set()
    connection = connection_class(URL("amqp://u:p@a:5701/"), reconnect_interval=1)
    for _ in range(4):
        connection.transport = None  # what aio-pika does before each attempt
        url = connection.url
        seen.add((url.host, url.port, url.password, url.query.get("name")))
    assert seen == {("a", 5701, "p", "mpr-test"), ("b", 5702, "p", "mpr-test")}
    single = make_broker("amqp://u:p@a:5701/", service="test")
    assert "connection_class" not in single._connection_kwargs
