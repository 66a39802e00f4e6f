"""Broker wiring shared by every service: one broker factory, one way to set publish
properties and dead-letter headers, handler selection by message type, and a middleware
that retries or dead-letters what a consumer cannot process, with the reason."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar, cast
from uuid import UUID

from aio_pika import IncomingMessage, RobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from faststream import BaseMiddleware, ContextRepo
from faststream.exceptions import SubscriberNotFound
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue, RabbitRouter
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.schemas import Channel
from faststream.rabbit.utils import RabbitClientProperties
from pamqp.commands import Basic
from pydantic import ValidationError
from yarl import URL

from mpr_shared.amqp_nodes import NodeRing, RotatingConnection, amqp_nodes
from mpr_shared.contracts import Command, Event, Message
from mpr_shared.topology import COMMANDS, DEAD_LETTER, EVENTS

log = logging.getLogger(__name__)

# Headers every MPR publish may carry.
TYPE_HEADER = "x-mpr-type"  # the contract's class name: what selects a handler
ROUTING_KEY_HEADER = "x-mpr-routing-key"  # set on a retry: the key it was first published with
ATTEMPTS_HEADER = "x-mpr-handler-attempts"
# Headers a dead-lettered message carries, so an operator sees why it is there.
ERROR_HEADER = "x-mpr-error"
ERROR_TYPE_HEADER = "x-mpr-error-type"
QUEUE_HEADER = "x-mpr-queue"
FAILED_AT_HEADER = "x-mpr-failed-at"
# What a quorum queue sets on a redelivery (QUEUE_TYPE=quorum).
QUORUM_DELIVERY_COUNT = "x-delivery-count"
# Tries before an unexpected handler error dead-letters the message.
HANDLER_ATTEMPTS = 5
JSON = "application/json"
PERSISTENT = 2  # AMQP delivery mode: written to disk on durable queues
MAX_REASON_CHARS = 4000

M = TypeVar("M", bound=Message)


class PoisonMessage(Exception):
    """The message can never be processed (bad schema, bad values); dead-letter it."""


# What can never succeed on a retry: dead-lettered at once.
POISON: tuple[type[Exception], ...] = (
    PoisonMessage,
    ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    SubscriberNotFound,
)


def make_broker(
    amqp_url: str,
    *,
    service: str,
    prefetch: int | None = 16,
    graceful_timeout: float | None = 15.0,
) -> RabbitBroker:
    """A RabbitBroker with publisher confirms and bounded prefetch (``queue_router``: DLQs).

    ``amqp_url`` may list a cluster's nodes (``amqp://u:p@n1:5672,n2:5672/``, amqp_nodes.py).
    """
    # aiormq names the connection (RabbitMQ's connection list, the management UI) after the
    # URL's ``name``; FastStream's connection_name below does not reach it.
    named = {"name": f"mpr-{service}"}
    nodes = tuple(str(URL(n).update_query(named)) for n in amqp_nodes(amqp_url))
    return ClusterBroker(
        nodes,
        app_id=f"mpr-{service}",
        # Unbounded prefetch lets one replica hoard a queue; bound it per channel.
        # https://www.rabbitmq.com/docs/consumer-prefetch
        default_channel=Channel(prefetch_count=prefetch, publisher_confirms=True),
        graceful_timeout=graceful_timeout,
        # FastStream logs every message at INFO; that is debug detail for us.
        log_level=logging.DEBUG,
        # FastStream's TypedDict lists no connection_name, but aio-pika passes every key on
        # to RabbitMQ, which shows it in the management UI.
        client_properties=cast("RabbitClientProperties", {"connection_name": f"mpr-{service}"}),
    )


class ClusterBroker(RabbitBroker):
    """A RabbitBroker whose connection takes a cluster's nodes in turn (amqp_nodes.py); on
    one node, a plain RabbitBroker."""

    def __init__(self, nodes: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(nodes[0], **kwargs)
        # FastStream adds options (connection_name ...) to the URL's query: every node's too.
        options = URL(self._connection_kwargs["url"]).query
        self._ring = NodeRing(tuple(str(URL(n).update_query(options)) for n in nodes))
        if len(nodes) > 1:
            # FastStream passes its connection kwargs on to aio_pika.connect_robust.
            self._connection_kwargs["connection_class"] = RotatingConnection.over(self._ring)

    async def _connect(self) -> RobustConnection:
        """The first connection tries every node once before giving up."""
        for tried in range(1, len(self._ring.urls) + 1):
            try:
                return await super()._connect()
            except CONNECTION_EXCEPTIONS as exc:
                if tried == len(self._ring.urls):
                    raise
                log.warning("RabbitMQ node unreachable (%s); trying the next one", exc)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------- publish properties


@dataclass(frozen=True, slots=True)
class PublishProperties:
    """The AMQP properties of one publish, for FastStream or for a raw aiormq publish."""

    message_id: str | None
    headers: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    priority: int | None = None
    timestamp: datetime | None = None
    content_type: str | None = JSON
    reply_to: str | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of FastStream's ``broker.publish`` and ``broker.request``."""
        options: dict[str, Any] = {
            "persist": True,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "headers": dict(self.headers),
            "priority": self.priority,
            "content_type": self.content_type,
            "timestamp": self.timestamp,
        }
        if self.reply_to:
            options["reply_to"] = self.reply_to
        return options

    def basic(self) -> Basic.Properties:
        """The same properties for aiormq's ``basic_publish``."""
        return Basic.Properties(
            content_type=self.content_type,
            headers=dict(self.headers),
            delivery_mode=PERSISTENT,
            priority=self.priority,
            correlation_id=self.correlation_id,
            reply_to=self.reply_to,
            message_id=self.message_id,
            timestamp=self.timestamp,
        )


def publish_properties(
    message_id: UUID | str | None,
    message_type: str | None = None,
    *,
    correlation_id: str | None = None,
    priority: int | None = None,
    timestamp: datetime | None = None,
    headers: Mapping[str, Any] | None = None,
    content_type: str | None = JSON,
    reply_to: str | None = None,
) -> PublishProperties:
    """The one place publish properties are set: persistent, typed (``x-mpr-type``), JSON."""
    all_headers = dict(headers or {})
    if message_type is not None:
        all_headers[TYPE_HEADER] = message_type
    return PublishProperties(
        message_id=str(message_id) if message_id is not None else None,
        headers=all_headers,
        correlation_id=correlation_id,
        priority=priority,
        timestamp=timestamp or datetime.now(UTC),
        content_type=content_type,
        reply_to=reply_to,
    )


def message_priority(message: Message) -> int | None:
    """A command's own priority (ProcessMedia's is the job's); None for events."""
    priority = getattr(message, "priority", None)
    return priority if isinstance(message, Command) and isinstance(priority, int) else None


def message_properties(
    message: Message, headers: Mapping[str, Any] | None = None
) -> PublishProperties:
    """Publish properties of a contract message."""
    return publish_properties(
        message.id,
        type(message).__name__,
        correlation_id=message.correlation_id,
        priority=message_priority(message),
        timestamp=message.occurred_at,
        headers=headers,
    )


def exchange_of(message: Message) -> RabbitExchange:
    """Commands go to mpr.commands, events to mpr.events."""
    return COMMANDS if isinstance(message, Command) else EVENTS


async def publish(
    broker: RabbitBroker,
    message: Message,
    exchange: RabbitExchange | None = None,
    *,
    routing_key: str | None = None,
    priority: int | None = None,
) -> None:
    """Publish persistently and wait for the broker's confirm."""
    properties = message_properties(message).kwargs()
    if priority is not None:
        properties["priority"] = priority
    await broker.publish(
        message.model_dump(mode="json"),
        exchange=exchange or exchange_of(message),
        routing_key=routing_key or message.ROUTING_KEY,
        **properties,
    )


async def publish_event(broker: RabbitBroker, event: Event) -> None:
    await publish(broker, event, EVENTS)


async def send_command(
    broker: RabbitBroker, command: Command, *, priority: int | None = None
) -> None:
    await publish(broker, command, COMMANDS, priority=priority)


def dead_letter_headers(
    headers: Mapping[str, Any], *, queue: str, reason: str, cause: BaseException
) -> dict[str, Any]:
    """``headers`` plus why, where and when a message died: the one place these are written."""
    return {
        **headers,
        ERROR_HEADER: reason[:MAX_REASON_CHARS],
        ERROR_TYPE_HEADER: type(cause).__name__,
        QUEUE_HEADER: queue,
        FAILED_AT_HEADER: datetime.now(UTC).isoformat(),
    }


# ---------------------------------------------------------------- handler selection


def delivered_type(headers: Mapping[str, Any] | None, routing_key: str | None) -> str:
    """What a delivery says it is: its ``x-mpr-type``, else the key it was published with."""
    headers = headers or {}
    name = headers.get(TYPE_HEADER)
    if name:
        return str(name)
    return str(headers.get(ROUTING_KEY_HEADER) or routing_key or "")


def type_of(message: RabbitMessage, types: Iterable[type[M]]) -> type[M] | None:
    """The contract among ``types`` a delivery carries: by ``x-mpr-type``, else routing key."""
    # A retry comes back on the default exchange with the queue's name as routing key and
    # its headers kept, so it reaches the handler the first delivery reached.
    headers = message.headers or {}
    delivered = delivered_type(headers, message.raw_message.routing_key)
    by_name = TYPE_HEADER in headers
    for candidate in types:
        if delivered == (candidate.__name__ if by_name else candidate.ROUTING_KEY):
            return candidate
    return None


def of_type(*types: type[Message]) -> Callable[[RabbitMessage], Awaitable[bool]]:
    """A FastStream filter: the delivery carries one of ``types``."""

    # Async on purpose: FastStream runs a sync filter in a thread pool, which costs a thread
    # hop per handler and lets later deliveries overtake earlier ones.
    async def matches(message: RabbitMessage) -> bool:
        return type_of(message, types) is not None

    return matches


# ---------------------------------------------------------------- dead letters


def describe_error(exc: BaseException, body: bytes | None = None) -> str:
    """A one-paragraph reason for humans (validation errors list each bad field)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"body is not UTF-8 text: {exc}"
    if isinstance(exc, ValidationError) and body is not None and (bad := _not_json(body)):
        return bad
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        return "message does not match its schema: " + "; ".join(parts)
    if isinstance(exc, json.JSONDecodeError):
        return f"body is not valid JSON: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _not_json(body: bytes) -> str | None:
    """Why ``body`` is not JSON text, or None when it is."""
    try:
        json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        return f"body is not UTF-8 text: {err}"
    except ValueError as err:
        return f"body is not valid JSON: {err}"
    return None


def _routed(result: object) -> bool:
    """A confirmed publish returns Basic.Ack; an unroutable one returns the message back."""
    return result is None or isinstance(result, Basic.Ack)


def queue_router(queue: RabbitQueue) -> RabbitRouter:
    """A router for ``queue``'s subscribers: what they raise is retried or dead-lettered."""
    return RabbitRouter(middlewares=(DeadLetterMiddleware.bound_to(queue.name),))


class DeadLetterMiddleware(BaseMiddleware):
    """What a consumer raises never stops it and is never lost.

    Poison (bad JSON or UTF-8, wrong schema, no handler for the type, PoisonMessage) goes to
    ``<queue>.dlq`` at once with the reason in its headers. Any other error may be transient
    (a locked SQLite file, a database fail-over), so the message goes back to its queue after
    a backoff, counting tries in ``x-mpr-handler-attempts``; after HANDLER_ATTEMPTS it is
    dead-lettered with the reason. The original is acked only after the broker confirmed the
    new copy. Bound to one queue (``queue_router``): FastStream tells a middleware nothing
    public about the queue it serves.
    """

    def __init__(self, msg: IncomingMessage | None, /, *, context: ContextRepo, queue: str) -> None:
        super().__init__(msg, context=context)
        self.queue = queue

    @classmethod
    def bound_to(cls, queue: str) -> Callable[..., DeadLetterMiddleware]:
        """The middleware factory FastStream calls per delivery, for ``queue``."""

        def build(msg: IncomingMessage | None, /, *, context: ContextRepo) -> DeadLetterMiddleware:
            return cls(msg, context=context, queue=queue)

        return build

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        broker = self.context.get("broker")
        if not isinstance(exc_val, Exception) or self.msg is None or broker is None:
            return False
        try:
            await self._retry_or_dead_letter(broker, self.msg, exc_val)
        except Exception:
            log.exception("could not retry or dead-letter; rejecting so RabbitMQ's DLX keeps it")
            return False
        return True  # handled: the acknowledgement middleware acks the original

    async def _retry_or_dead_letter(
        self, broker: RabbitBroker, msg: IncomingMessage, exc: Exception
    ) -> None:
        reason = self._reason(msg, exc)
        attempt = _attempts(msg.headers) + 1
        poison = isinstance(exc, POISON)
        if poison or attempt >= HANDLER_ATTEMPTS:
            self._log_dead_letter(msg, exc, reason, poison)
            headers = dead_letter_headers(msg.headers, queue=self.queue, reason=reason, cause=exc)
            result = await self._republish(broker, msg, headers, DEAD_LETTER, self.queue)
        else:
            result = await self._retry(broker, msg, attempt, reason)
        if not _routed(result):
            raise RuntimeError(f"no queue is bound for {self.queue}'s dead letters or retries")

    async def _retry(
        self, broker: RabbitBroker, msg: IncomingMessage, attempt: int, reason: str
    ) -> object:
        """Back to the same queue (default exchange, routing key = queue name), headers kept."""
        log.warning(
            "message %s from %s failed (attempt %d of %d), retrying: %s",
            msg.message_id,
            self.queue,
            attempt,
            HANDLER_ATTEMPTS,
            reason,
        )
        await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        # A quorum queue's x-delivery-count belongs to the delivery, not to the new copy.
        kept = {k: v for k, v in msg.headers.items() if k != QUORUM_DELIVERY_COUNT}
        headers = {**_first_routing_key(msg), **kept, ATTEMPTS_HEADER: attempt}
        return await self._republish(broker, msg, headers, None, self.queue)

    def _reason(self, msg: IncomingMessage, exc: Exception) -> str:
        if isinstance(exc, SubscriberNotFound):
            kind = delivered_type(msg.headers, msg.routing_key)
            return f"no handler for type {kind!r} on queue {self.queue}"
        return describe_error(exc, msg.body)

    def _log_dead_letter(
        self, msg: IncomingMessage, exc: Exception, reason: str, poison: bool
    ) -> None:
        trace = "" if poison else "\n" + "".join(traceback.format_exception(exc)[-3:])
        (log.warning if poison else log.error)(
            "dead-lettering message %s from %s: %s%s", msg.message_id, self.queue, reason, trace
        )

    async def _republish(
        self,
        broker: RabbitBroker,
        msg: IncomingMessage,
        headers: dict[str, Any],
        exchange: RabbitExchange | None,
        routing_key: str,
    ) -> object:
        """The delivery's body and properties, with ``headers``, confirmed by the broker."""
        properties = publish_properties(
            msg.message_id,
            correlation_id=msg.correlation_id,
            priority=msg.priority,
            timestamp=msg.timestamp,
            headers=headers,
            content_type=msg.content_type,
            reply_to=msg.reply_to,
        )
        target: dict[str, Any] = {"exchange": exchange, "routing_key": routing_key}
        if exchange is None:
            target = {"queue": routing_key}
        return await broker.publish(msg.body, **target, **properties.kwargs())


def _attempts(headers: Mapping[str, Any]) -> int:
    """Tries so far, from ``x-mpr-handler-attempts`` (0 when absent or not a number)."""
    try:
        return int(headers.get(ATTEMPTS_HEADER) or 0)
    except (TypeError, ValueError):
        return 0


def _first_routing_key(msg: IncomingMessage) -> dict[str, Any]:
    """The routing key a message was first published with (a retry's is the queue name)."""
    return {ROUTING_KEY_HEADER: msg.routing_key} if msg.routing_key else {}
