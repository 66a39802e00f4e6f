"""A RabbitMQ cluster of three nodes of the machine's own RabbitMQ, on loopback ports.

Each node has its own name (mpr-c1@localhost ...), AMQP port (5701-5703), distribution port
(25701-25703), data, log and pid file under a temporary directory, and no plugins, so the
machine's node on 5672 (which other tests use) is never touched. The nodes run with the
`rabbitmq` user's home, so they share its Erlang cookie and `rabbitmqctl -n` reaches them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
FIRST_PORT = 5701
DIST_OFFSET = 20000
# As on the machine's node (scripts/infra.sh): long transcodes are not redelivered.
CONSUMER_TIMEOUT_MS = 21_600_000


def as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", "-n", "--preserve-env", *command]


def can_run() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    if not Path(SERVER).exists():
        return "the Debian rabbitmq-server package is not installed"
    if os.geteuid() != 0 and subprocess.run(["sudo", "-n", "true"]).returncode:
        return "starting RabbitMQ nodes needs root or password-less sudo"
    return None


@dataclass
class Node:
    index: int
    base: Path

    @property
    def name(self) -> str:
        return f"mpr-c{self.index}@localhost"

    @property
    def port(self) -> int:
        return FIRST_PORT + self.index - 1

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self, home: str) -> dict[str, str]:
        state = self.base / f"c{self.index}"
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.port + DIST_OFFSET),
            "RABBITMQ_CONFIG_FILE": str(state / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(state / "mnesia"),
            "RABBITMQ_LOG_BASE": str(state / "log"),
            "RABBITMQ_PID_FILE": str(state / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # The distribution port on loopback too.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }


@dataclass(frozen=True)
class Connection:
    pid: str
    name: str
    port: int


@dataclass
class RabbitCluster:
    base: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.nodes = [Node(i, self.base) for i in range(1, self.size + 1)]
        self.home = subprocess.run(
            ["getent", "passwd", "rabbitmq"], capture_output=True, text=True, check=True
        ).stdout.split(":")[5]

    def url(self, nodes: list[Node] | None = None) -> str:
        """AMQP_URL listing the nodes (all by default)."""
        return "amqp://guest:guest@" + ",".join(n.host for n in nodes or self.nodes) + "/"

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            as_root([CTL, "-q", "-n", node.name, *args]),
            env=node.env(self.home),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self) -> RabbitCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's NODENAME
        (self.base / "enabled_plugins").write_text("[].\n")  # no management UI on :15672
        for node in self.nodes:
            state = self.base / f"c{node.index}"
            state.mkdir(exist_ok=True)
            (state / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{node.port}\n"
                f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\n"
            )
        with ThreadPoolExecutor(self.size) as pool:
            list(pool.map(self._boot, self.nodes))
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", seed.name)
            self.ctl(node, "start_app", timeout=120)
        running = set(
            json.loads(self.ctl(seed, "cluster_status", "--formatter", "json"))["running_nodes"]
        )
        if running != {n.name for n in self.nodes}:
            raise RuntimeError(f"the cluster did not form: {running}")
        return self

    def _boot(self, node: Node) -> None:
        subprocess.run(
            as_root([SERVER, "-detached"]), env=node.env(self.home), check=True, timeout=60
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                self.ctl(node, "await_startup", "--timeout", "90", timeout=120)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def leader(self, queue: str) -> Node:
        """The node leading quorum queue ``queue``, asked of a running node."""
        alive = next(n for n in self.nodes if n.name not in self.stopped)
        rows = self.ctl(alive, "list_queues", "name", "leader", "--formatter", "json")
        leader = next(r["leader"] for r in json.loads(rows) if r["name"] == queue)
        return next(n for n in self.nodes if n.name == leader)

    def connections(self) -> list[Connection]:
        """Open client connections, with the name the client gave and the node's port."""
        alive = next(n for n in self.nodes if n.name not in self.stopped)
        columns = ("name", "client_properties", "port")
        rows = self.ctl(alive, "list_connections", *columns, "--formatter", "json")
        # JSON shows pids in a form close_connection does not take; the table's does.
        table = self.ctl(alive, "list_connections", "name", "pid").splitlines()[1:]
        pids = dict(line.split("\t", 1) for line in table if "\t" in line)
        found = []
        for row in json.loads(rows):
            props = {name: value for name, _, value in row["client_properties"]}
            name = str(props.get("connection_name", "?"))
            found.append(Connection(pids.get(row["name"], ""), name, int(row["port"])))
        return found

    def close(self, connection: Connection) -> None:
        """Close a client's connection from the broker side, as a node restart would."""
        alive = next(n for n in self.nodes if n.name not in self.stopped)
        self.ctl(alive, "close_connection", connection.pid, "moved by the cluster test")

    def stop(self, node: Node) -> None:
        """Stop the whole node (its Erlang VM), as a machine that goes away."""
        self.stopped.add(node.name)
        self.ctl(node, "shutdown", timeout=120)

    def shutdown(self) -> None:
        for node in self.nodes:
            if node.name in self.stopped:
                continue
            try:
                self.ctl(node, "shutdown", timeout=120)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"could not shut {node.name} down: {exc}")
            self.stopped.add(node.name)
