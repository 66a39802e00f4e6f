"""Broker topology, declared once: exchanges, durable queues and their dead-letter queues.

Every queue dead-letters into ``mpr.dead-letter`` with its own name as the routing key:
``<queue>.dlq`` holds what a durable queue dead-lettered, ``mpr.<svc>.live.dlq`` what any
of a service's live queues did, with the reason in headers.

QUEUE_TYPE (CommonSettings) picks how the durable queues are declared. ``classic`` (the
default, and what RabbitMQ 3.10 of ``make dev`` needs for priorities) keeps each queue on one
node, with 10 job priorities. ``quorum`` replicates every durable queue and DLQ over a
cluster (Raft): a delivery limit, at-least-once dead-lettering, and on RabbitMQ 4.x two
priority levels, which MPR's 0-9 maps onto as RabbitMQ does (0-4 normal, 5-9 high; 3.10
delivers quorum queues in FIFO order). Per-replica live queues stay classic and exclusive:
they die with their replica anyway. Queue arguments cannot change once declared, so
subscribers only check that their queue exists (``declare=False``) and ``declare_topology``
alone declares them, and says what to do when the broker holds the other type.
https://www.rabbitmq.com/docs/quorum-queues
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from aiormq.exceptions import ChannelPreconditionFailed
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import ClassicQueueArgs, QuorumQueueArgs

from mpr_shared.settings import CommonSettings
from mpr_shared.settings import QueueType as QueueTypeSetting

log = logging.getLogger(__name__)

COMMANDS = RabbitExchange("mpr.commands", type=ExchangeType.TOPIC, durable=True)
EVENTS = RabbitExchange("mpr.events", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER = RabbitExchange("mpr.dead-letter", type=ExchangeType.TOPIC, durable=True)

MAX_JOB_PRIORITY = 9
DLQ_SUFFIX = ".dlq"
LIVE_PREFIX = "mpr.{service}.live"
# Services with per-replica live queues (CancelJob fan-out, SSE fan-out).
LIVE_QUEUE_SERVICES = ("transcoder", "notifier")
# A quorum queue dead-letters a message returned this many times (a consumer that dies on
# it each time). Handlers never get there: a failed handler republishes with its own count
# (x-mpr-handler-attempts, the transcoder's x-mpr-deliveries) and acks. 20 is RabbitMQ 4's
# default. https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling
QUORUM_DELIVERY_LIMIT = 20
# At-least-once dead-lettering (the DLQ confirms before the message leaves its queue) needs
# reject-publish overflow. https://www.rabbitmq.com/docs/quorum-queues#dead-lettering
QUORUM_ARGUMENTS: dict[str, Any] = {
    "x-delivery-limit": QUORUM_DELIVERY_LIMIT,
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def s3_events_exchange(settings: CommonSettings) -> RabbitExchange:
    """The bucket-notification exchange. MinIO re-declares it before every publish, so the
    flags (topic, durable, not auto-deleted, not internal, no arguments) must match MinIO's
    MINIO_NOTIFY_AMQP_* settings exactly, or the declare fails with PRECONDITION_FAILED."""
    return RabbitExchange(
        settings.s3_events_exchange, type=ExchangeType.TOPIC, durable=True, auto_delete=False
    )


def dead_lettered_to(name: str) -> ClassicQueueArgs:
    """Queue arguments that send what ``name`` rejects to mpr.dead-letter, keyed by ``name``."""
    return {"x-dead-letter-exchange": DEAD_LETTER.name, "x-dead-letter-routing-key": name}


def work_queue(name: str, routing_key: str, *, max_priority: int | None = None) -> RabbitQueue:
    """A durable queue whose rejected messages dead-letter to ``<name>.dlq``.

    Its arguments here are the classic ones; ``declare_topology`` declares it as QUEUE_TYPE
    says (``as_queue_type``), and subscribers only check that it exists (``declare=False``).
    """
    arguments = dead_lettered_to(name)
    if max_priority is not None:
        arguments["x-max-priority"] = max_priority
    return RabbitQueue(
        name, durable=True, routing_key=routing_key, arguments=arguments, declare=False
    )


def dead_letter_queue(queue: RabbitQueue) -> RabbitQueue:
    return RabbitQueue(queue.name + DLQ_SUFFIX, durable=True, routing_key=queue.name)


def as_queue_type(queue: RabbitQueue, queue_type: QueueTypeSetting) -> RabbitQueue:
    """``queue`` as ``declare_topology`` declares it: classic as written, or quorum (no
    x-max-priority: RabbitMQ 4 has two levels built in and 3.10 none)."""
    arguments = {k: v for k, v in (queue.arguments or {}).items() if k != "x-queue-type"}
    if queue_type is QueueTypeSetting.CLASSIC:
        classic = cast("ClassicQueueArgs", arguments)
        return RabbitQueue(
            queue.name, durable=True, routing_key=queue.routing_key, arguments=classic
        )
    arguments.pop("x-max-priority", None)
    if "x-dead-letter-exchange" in arguments:
        arguments |= QUORUM_ARGUMENTS
    return RabbitQueue(
        queue.name,
        QueueType.QUORUM,
        durable=True,
        routing_key=queue.routing_key,
        arguments=cast("QuorumQueueArgs", arguments),
    )


class QueueTypeMismatch(SystemExit):
    """The broker holds a durable queue declared with other arguments (another QUEUE_TYPE)."""


# Commands (on COMMANDS).
TRANSCODER_JOBS = work_queue("mpr.transcoder.jobs", "job.run", max_priority=MAX_JOB_PRIORITY)
CATALOG_SCAN = work_queue("mpr.catalog.scan", "catalog.scan")
CATALOG_REGISTER = work_queue("mpr.catalog.register", "catalog.register")
GATEWAY_JOB_REQUESTS = work_queue("mpr.gateway.job-requests", "job.create")

# Events (on EVENTS).
# The gateway binds the transcoder's job events one by one: job.* would also bring back the
# JobQueued it publishes itself, as work it can only skip.
GATEWAY_JOB_EVENTS = work_queue("mpr.gateway.job-events", "")
GATEWAY_JOB_EVENT_KEYS = (
    "job.started",
    "job.progress",
    "job.completed",
    "job.failed",
    "job.cancelled",
)
NOTIFIER_WEBHOOKS = work_queue("mpr.notifier.webhooks", "job.*")
# Worker heartbeats: only the latest matters, so a backlog (the gateway down for a while) is
# dropped by the TTL instead of piling up, and expired ones are not dead-lettered (no DLX
# argument; a heartbeat that fails its handler is still dead-lettered by queue_router).
# https://www.rabbitmq.com/docs/ttl#per-queue-message-ttl
# As long as the gateway's default WORKER_TIMEOUT_SECONDS: an older heartbeat proves nothing.
WORKER_HEARTBEAT_TTL_MS = 30_000
GATEWAY_WORKERS = RabbitQueue(
    "mpr.gateway.workers",
    durable=True,
    routing_key="worker.*",
    arguments={"x-message-ttl": WORKER_HEARTBEAT_TTL_MS},
)


def catalog_s3_events(settings: CommonSettings) -> RabbitQueue:
    """The catalog's own durable queue for bucket notifications."""
    return work_queue("mpr.catalog.s3-events", settings.events_routing_key)


def live_queue(service: str, instance: str, routing_key: str) -> RabbitQueue:
    """A per-replica queue (fan-out); its dead letters go to the durable mpr.<svc>.live.dlq."""
    name = f"{LIVE_PREFIX.format(service=service)}.{instance}"
    return RabbitQueue(
        name,
        durable=False,
        exclusive=True,
        auto_delete=True,
        routing_key=routing_key,
        arguments=dead_lettered_to(name),
    )


@dataclass(frozen=True)
class Binding:
    exchange: RabbitExchange
    queue: RabbitQueue
    # Several routing keys for one queue; empty means the queue's own routing_key.
    routing_keys: tuple[str, ...] = ()
    # Keys an earlier version bound: a binding outlives the code that made it, so these are
    # unbound at start-up (unbinding a missing binding is a no-op).
    stale_routing_keys: tuple[str, ...] = ()

    @property
    def bound_keys(self) -> tuple[str, ...]:
        return self.routing_keys or (self.queue.routing_key,)


def durable_bindings(settings: CommonSettings) -> list[Binding]:
    """Every durable queue MPR owns, with the exchange it is bound to."""
    return [
        Binding(COMMANDS, TRANSCODER_JOBS),
        Binding(COMMANDS, CATALOG_SCAN),
        Binding(COMMANDS, CATALOG_REGISTER),
        Binding(COMMANDS, GATEWAY_JOB_REQUESTS),
        Binding(EVENTS, GATEWAY_JOB_EVENTS, GATEWAY_JOB_EVENT_KEYS, ("job.*",)),
        Binding(EVENTS, NOTIFIER_WEBHOOKS),
        Binding(EVENTS, GATEWAY_WORKERS),
        Binding(s3_events_exchange(settings), catalog_s3_events(settings)),
    ]


def live_dead_letter_queue(service: str) -> RabbitQueue:
    """One durable DLQ for all of a service's live (per-replica) queues."""
    prefix = LIVE_PREFIX.format(service=service)
    return RabbitQueue(prefix + DLQ_SUFFIX, durable=True, routing_key=f"{prefix}.#")


def dead_letter_queues(settings: CommonSettings) -> list[RabbitQueue]:
    """Every DLQ, each bound to mpr.dead-letter with its ``routing_key``."""
    durable = [dead_letter_queue(b.queue) for b in durable_bindings(settings)]
    return durable + [live_dead_letter_queue(s) for s in LIVE_QUEUE_SERVICES]


async def declare_topology(broker: RabbitBroker, settings: CommonSettings) -> None:
    """Declare every exchange, durable queue, binding and DLQ, each once (idempotent)."""
    # Live queues are their subscribers' own: they come and go with a replica.
    bindings = durable_bindings(settings)
    exchanges = {b.exchange.name: b.exchange for b in bindings} | {DEAD_LETTER.name: DEAD_LETTER}
    declared = {name: await broker.declare_exchange(e) for name, e in exchanges.items()}
    for binding in bindings:
        queue = await _declare(broker, binding.queue, settings)
        exchange = declared[binding.exchange.name]
        for key in binding.bound_keys:
            await queue.bind(exchange, routing_key=key)
        for key in binding.stale_routing_keys:
            await queue.unbind(exchange, routing_key=key)
    for dlq in dead_letter_queues(settings):
        queue = await _declare(broker, dlq, settings)
        await queue.bind(declared[DEAD_LETTER.name], routing_key=dlq.routing_key)


async def _declare(broker: RabbitBroker, queue: RabbitQueue, settings: CommonSettings) -> Any:
    """Declare ``queue`` as QUEUE_TYPE says; a queue the broker holds with other arguments
    ends the process with what to do (RabbitMQ never changes a queue's arguments)."""
    try:
        return await broker.declare_queue(as_queue_type(queue, settings.queue_type))
    except ChannelPreconditionFailed as exc:
        message = (
            f"queue {queue.name} already exists on the broker with other arguments than "
            f"QUEUE_TYPE={settings.queue_type.value} declares, and RabbitMQ cannot change a "
            f"queue's type or arguments ({exc}). Either set QUEUE_TYPE back to what the "
            "broker holds, or move to the new type: stop every MPR service, let the queues "
            f"drain (or move their messages with a shovel), delete them (rabbitmqctl "
            f"delete_queue {queue.name}, and likewise every mpr.* queue and its .dlq), then "
            "start the services, which declare them anew."
        )
        log.critical("%s", message)
        raise QueueTypeMismatch(message) from None
