"""RabbitMQ adapters of the worker's ports: event publisher, delivery and redelivery."""

from __future__ import annotations

import logging
from typing import Any

from aio_pika.exceptions import ChannelInvalidStateError
from aiormq.exceptions import DeliveryError
from faststream.rabbit import RabbitBroker, RabbitExchange
from faststream.rabbit.message import RabbitMessage

from mpr_shared.contracts import Event, ProcessMedia
from mpr_shared.messaging import dead_letter_headers, message_properties, publish_event
from mpr_shared.topology import COMMANDS, DEAD_LETTER, TRANSCODER_JOBS
from mpr_transcoder.domain.errors import TransientError

log = logging.getLogger(__name__)

# How many times a job has been delivered (classic queues do not count).
DELIVERIES_HEADER = "x-mpr-deliveries"


class BrokerEventPublisher:
    """EventPublisher on mpr.events: persistent, and waits for the publisher confirm."""

    def __init__(self, broker: RabbitBroker) -> None:
        self.broker = broker

    async def publish(self, event: Event) -> None:
        try:
            await publish_event(self.broker, event)
        except DeliveryError as exc:
            # A nack: a queue the event routes to could not take it (on a cluster, one whose
            # node just died, until RabbitMQ drops it). The job is retried, not failed.
            raise TransientError(f"RabbitMQ refused {type(event).__name__}: {exc}") from exc


class RabbitDelivery:
    """The worker's Delivery port over one FastStream RabbitMessage."""

    def __init__(self, message: RabbitMessage) -> None:
        self.message = message
        self.raw = message.raw_message
        # In-memory test brokers deliver on no real channel; there is nothing to watch.
        self._watchable = self._channel_open()

    @property
    def deliveries(self) -> int:
        try:
            return max(1, int((self.message.headers or {}).get(DELIVERIES_HEADER, 1)))
        except (TypeError, ValueError):
            return 1

    @property
    def redelivered(self) -> bool:
        return bool(getattr(self.raw, "redelivered", False))

    def _channel_open(self) -> bool:
        try:
            return not self.raw.channel.is_closed
        except (ChannelInvalidStateError, AttributeError):
            return False

    def lost(self) -> bool:
        if not self._watchable or self._channel_open():
            return False
        # The delivery tag died with its channel; never try to ack or nack it.
        self.raw.lock()
        return True


class BrokerRedelivery:
    """Republishes a job with its delivery count (raised for a retry, the same for a
    hand-back), or dead-letters it with the reason; both confirmed by the broker."""

    def __init__(self, broker: RabbitBroker) -> None:
        self.broker = broker

    async def republish(self, job: ProcessMedia, deliveries: int) -> None:
        await self._send(job, COMMANDS, job.ROUTING_KEY, {DELIVERIES_HEADER: deliveries})

    async def dead_letter(
        self, job: ProcessMedia, reason: str, deliveries: int, cause: BaseException
    ) -> None:
        headers = dead_letter_headers(
            {DELIVERIES_HEADER: deliveries},
            queue=TRANSCODER_JOBS.name,
            reason=reason,
            cause=cause,
        )
        await self._send(job, DEAD_LETTER, TRANSCODER_JOBS.name, headers)

    async def _send(
        self,
        job: ProcessMedia,
        exchange: RabbitExchange,
        routing_key: str,
        headers: dict[str, Any],
    ) -> None:
        await self.broker.publish(
            job.model_dump(mode="json"),
            exchange=exchange,
            routing_key=routing_key,
            **message_properties(job, headers).kwargs(),
        )
