"""Connecting to a RabbitMQ cluster by its nodes: each connection attempt takes the next one.

aio-pika's RobustConnection reconnects to the one URL it was given (aio-pika issue #141;
PR #680, a round-robin subclass, was not merged), so a client of a node that died waits for
that node. ``AMQP_URL`` may list the nodes, libpq-style:
``amqp://user:pass@node1:5672,node2:5672,node3:5672/vhost?heartbeat=10``. The broker's
connection then tries them in turn, starting at a random one to spread clients, and moves to
the next on every attempt, so publishers reconnect to a live node and FastStream's robust
channels restore their consumers there. In Kubernetes a Service in front of the nodes does
the same with one host name (deploy/README.md, "RabbitMQ cluster").

The library detail lives here only: the connection's ``url`` and the ``transport = None``
that aio-pika's RobustConnection sets before each attempt; tests/integration/shared/
test_amqp_nodes.py fails when either changes.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aio_pika import RobustConnection
from yarl import URL


def amqp_nodes(url: str) -> tuple[str, ...]:
    """One URL per node of ``url``, whose host part may list several ``host[:port]``."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = [h.strip() for h in hosts.split(",") if h.strip()]
    if len(nodes) <= 1:
        return (url,)
    prefix = f"{userinfo}@" if userinfo else ""
    return tuple(urlunsplit(parts._replace(netloc=prefix + node)) for node in nodes)


class NodeRing:
    """The nodes of one broker, handed out in turn from a random start."""

    def __init__(self, urls: tuple[str, ...]) -> None:
        if not urls:
            raise ValueError("no RabbitMQ node to connect to")
        self.urls = urls
        start = random.randrange(len(urls))
        self._turn: Iterator[str] = itertools.islice(itertools.cycle(urls), start, None)

    def next(self) -> URL:
        return URL(next(self._turn))


class RotatingConnection(RobustConnection):
    """A RobustConnection that connects to the ring's next node on every attempt."""

    nodes: NodeRing  # set by ``over``

    @classmethod
    def over(cls, nodes: NodeRing) -> type[RotatingConnection]:
        """The connection class for aio-pika's ``connection_class``, bound to ``nodes``
        (its other keyword arguments become URL query parameters)."""
        return type(cls.__name__, (cls,), {"nodes": nodes})

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        # aio-pika clears the transport before each attempt (and on close): the moment to
        # take the next node, so a reconnect after a node died goes to another one. (The
        # first clear, in __init__, comes before the URL is set.)
        if value is None and "url" in vars(self):
            self.url = self.nodes.next()
        self._transport = value
