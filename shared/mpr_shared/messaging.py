"""Broker wiring shared by every service: one broker factory, confirmed persistent publishes,
and a middleware that dead-letters what a consumer cannot process, with the reason."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any

from faststream import BaseMiddleware
from faststream.rabbit import RabbitBroker, RabbitExchange
from faststream.rabbit.schemas import Channel
from pamqp.commands import Basic
from pydantic import ValidationError

from mpr_shared.contracts import Command, Event, Message
from mpr_shared.topology import COMMANDS, DEAD_LETTER, EVENTS

log = logging.getLogger(__name__)

# Headers a dead-lettered message carries, so an operator sees why it is there.
ERROR_HEADER = "x-mpr-error"
ERROR_TYPE_HEADER = "x-mpr-error-type"
QUEUE_HEADER = "x-mpr-queue"
FAILED_AT_HEADER = "x-mpr-failed-at"
TYPE_HEADER = "x-mpr-type"
ATTEMPTS_HEADER = "x-mpr-handler-attempts"
# Tries before an unexpected handler error dead-letters the message.
HANDLER_ATTEMPTS = 5


class PoisonMessage(Exception):
    """The message can never be processed (bad schema, bad values); dead-letter it."""


def make_broker(
    amqp_url: str,
    *,
    service: str,
    prefetch: int | None = 16,
    graceful_timeout: float | None = 15.0,
) -> RabbitBroker:
    """A RabbitBroker with publisher confirms, bounded prefetch and dead-lettering."""
    return RabbitBroker(
        amqp_url,
        app_id=f"mpr-{service}",
        # Unbounded prefetch lets one replica hoard a queue; bound it per channel.
        # https://www.rabbitmq.com/docs/consumer-prefetch
        default_channel=Channel(prefetch_count=prefetch, publisher_confirms=True),
        middlewares=(DeadLetterMiddleware,),
        graceful_timeout=graceful_timeout,
        # FastStream logs every message at INFO; that is debug detail for us.
        log_level=logging.DEBUG,
        client_properties={"connection_name": f"mpr-{service}"},
    )


def message_headers(message: Message) -> dict[str, Any]:
    return {TYPE_HEADER: type(message).__name__}


async def publish(
    broker: RabbitBroker,
    message: Message,
    exchange: RabbitExchange,
    *,
    routing_key: str | None = None,
    priority: int | None = None,
) -> None:
    """Publish persistently and wait for the broker's confirm."""
    await broker.publish(
        message.model_dump(mode="json"),
        exchange=exchange,
        routing_key=routing_key or message.ROUTING_KEY,
        persist=True,
        message_id=str(message.id),
        correlation_id=message.correlation_id,
        headers=message_headers(message),
        priority=priority,
        content_type="application/json",
        timestamp=message.occurred_at,
    )


async def publish_event(broker: RabbitBroker, event: Event) -> None:
    await publish(broker, event, EVENTS)


async def send_command(
    broker: RabbitBroker, command: Command, *, priority: int | None = None
) -> None:
    await publish(broker, command, COMMANDS, priority=priority)


def describe_error(exc: BaseException, body: bytes | None = None) -> str:
    """A one-paragraph reason for humans (validation errors list each bad field)."""
    if isinstance(exc, ValidationError) and body is not None:
        try:
            json.loads(body)
        except ValueError as err:
            return f"body is not valid JSON: {err}"
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        return "message does not match its schema: " + "; ".join(parts)
    if isinstance(exc, json.JSONDecodeError):
        return f"body is not valid JSON: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _routed(result: object) -> bool:
    """A confirmed publish returns Basic.Ack; an unroutable one returns the message back."""
    return result is None or isinstance(result, Basic.Ack)


class DeadLetterMiddleware(BaseMiddleware):
    """What a consumer raises never stops it and is never lost.

    Poison (bad JSON, wrong schema, PoisonMessage) goes to ``<queue>.dlq`` at once with the
    reason in its headers. Any other error may be transient (a locked SQLite file, a database
    fail-over), so the message is republished to its queue after a backoff, counting tries in
    ``x-mpr-handler-attempts``; after HANDLER_ATTEMPTS it is dead-lettered with the reason.
    Either way the original is acked only after the broker confirmed the new copy.
    """

    async def after_processed(self, exc_type=None, exc_val=None, exc_tb=None) -> bool | None:
        if exc_val is None or not isinstance(exc_val, Exception):
            return False
        handler = self.context.get("handler_")
        queue = getattr(getattr(handler, "queue", None), "name", None)
        broker = self.context.get("broker")
        if not queue or broker is None:
            return False
        raw = getattr(self.msg, "body", b"")
        reason = describe_error(exc_val, raw)
        headers = dict(getattr(self.msg, "headers", {}) or {})
        poison = isinstance(exc_val, PoisonMessage | ValidationError | json.JSONDecodeError)
        attempt = int(headers.get(ATTEMPTS_HEADER, 0) or 0) + 1
        message_id = getattr(self.msg, "message_id", None)
        try:
            if not poison and attempt < HANDLER_ATTEMPTS:
                log.warning(
                    "message %s from %s failed (attempt %d of %d), retrying: %s",
                    message_id,
                    queue,
                    attempt,
                    HANDLER_ATTEMPTS,
                    reason,
                )
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
                headers[ATTEMPTS_HEADER] = attempt
                result = await self._republish(broker, raw, headers, queue=queue)
            else:
                (log.warning if poison else log.error)(
                    "dead-lettering message %s from %s: %s%s",
                    message_id,
                    queue,
                    reason,
                    "" if poison else "\n" + "".join(traceback.format_exception(exc_val)[-3:]),
                )
                headers.update(
                    {
                        ERROR_HEADER: reason[:4000],
                        ERROR_TYPE_HEADER: type(exc_val).__name__,
                        QUEUE_HEADER: queue,
                        FAILED_AT_HEADER: datetime.now(UTC).isoformat(),
                    }
                )
                result = await self._republish(
                    broker, raw, headers, exchange=DEAD_LETTER, routing_key=queue
                )
            if not _routed(result):
                raise RuntimeError(f"no queue is bound for {queue}'s dead letters or retries")
        except Exception:
            log.exception("could not retry or dead-letter; rejecting so RabbitMQ's DLX keeps it")
            return False
        return True  # handled: the acknowledgement middleware acks the original

    async def _republish(self, broker, raw: bytes, headers: dict[str, Any], **target: Any):
        raw_message = getattr(self.msg, "raw_message", None)
        return await broker.publish(
            raw,
            persist=True,
            headers=headers,
            message_id=getattr(self.msg, "message_id", None),
            correlation_id=getattr(self.msg, "correlation_id", None),
            content_type=getattr(self.msg, "content_type", None),
            reply_to=getattr(self.msg, "reply_to", None) or None,
            priority=getattr(raw_message, "priority", None),
            **target,
        )
