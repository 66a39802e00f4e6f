"""RabbitMQ adapters: the scan request/reply client, the connection check and the connect loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream.rabbit import Channel, RabbitBroker, RabbitQueue
from faststream.rabbit.helpers.declarer import RabbitDeclarer
from pydantic import ValidationError

from mpr_gateway.domain.errors import Unavailable
from mpr_gateway.domain.workers import QueueDepth
from mpr_shared.contracts import ScanBucket, ScanResult
from mpr_shared.messaging import message_properties
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import COMMANDS, declare_topology

log = logging.getLogger(__name__)

# How long a scan waits for a reconnecting broker before answering 503.
CONNECTED_WAIT_SECONDS = 1.0
RECONNECT_SECONDS = 5.0
PROBE_CHANNEL = Channel()


class BrokerScanner:
    """Sends ScanBucket to the catalog and waits for its ScanResult (Direct Reply-To)."""

    def __init__(self, broker: RabbitBroker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def scan(self, prefix: str) -> ScanResult:
        if not await self._broker.ping(timeout=CONNECTED_WAIT_SECONDS):
            raise Unavailable("the message broker is unreachable, so the catalog cannot scan")
        command = ScanBucket(prefix=prefix)
        try:
            reply = await self._broker.request(
                command.model_dump(mode="json"),
                exchange=COMMANDS,
                routing_key=command.ROUTING_KEY,
                timeout=self._timeout,
                **message_properties(command).kwargs(),
                # No expiration: an expired request would be dead-lettered to
                # mpr.catalog.scan.dlq and look like a failure; a late scan is idempotent.
            )
        except TimeoutError:
            raise Unavailable(
                f"the catalog did not answer within {self._timeout:g}s; is mpr_catalog running?",
                retry_after=10,
            ) from None
        except Exception as exc:
            log.warning("scan request failed: %s", exc)
            raise Unavailable(f"could not reach the catalog: {type(exc).__name__}") from None
        return _scan_result(reply.body)


def _scan_result(body: bytes) -> ScanResult:
    try:
        result = ScanResult.model_validate_json(body)
    except ValidationError as exc:
        log.error("catalog sent an unexpected scan reply: %s", exc)
        raise Unavailable("the catalog sent an unexpected reply; see the gateway log") from None
    if result.error:
        reason = f"the catalog could not scan the bucket: {result.error}"
        raise Unavailable(reason, retry_after=10)
    return result


class BrokerConnection:
    """The broker's connection is up (the readiness check)."""

    def __init__(self, broker: RabbitBroker) -> None:
        self._broker = broker

    async def check(self) -> None:
        if not await self._broker.ping(timeout=2.0):
            raise ConnectionError("not connected (reconnecting)")


async def keep_connecting(broker: RabbitBroker, settings: CommonSettings) -> None:
    """Connect, declare the topology and start consuming; retried until RabbitMQ answers."""
    while True:
        try:
            await broker.connect()
            await declare_topology(broker, settings)
            await broker.start()
        except Exception as exc:
            log.warning("RabbitMQ unreachable (%s); retrying in %gs", exc, RECONNECT_SECONDS)
            with contextlib.suppress(Exception):
                await broker.stop()
            await asyncio.sleep(RECONNECT_SECONDS)
        else:
            log.info("connected to RabbitMQ; consuming job events and job requests")
            return


class BrokerQueueProbe:
    """QueueProbe by a passive queue.declare: RabbitMQ answers with the ready messages and
    consumers (https://www.rabbitmq.com/docs/queues#properties). On a channel of its own, as
    a failed passive declare closes its channel."""

    def __init__(self, broker: RabbitBroker) -> None:
        self._broker = broker

    async def depth(self, queue: str) -> QueueDepth:
        if not await self._broker.ping(timeout=CONNECTED_WAIT_SECONDS):
            raise Unavailable("the message broker is unreachable; the queue depth is unknown")
        try:
            declarer: RabbitDeclarer = self._broker.config.declarer
            declared = await declarer.declare_queue(
                RabbitQueue(queue, declare=False), channel=PROBE_CHANNEL
            )
            result = await declared.declare()  # the cached queue, declared again: fresh counts
        except Exception as exc:
            log.warning("passive declare of %s failed: %s", queue, exc)
            raise Unavailable(f"could not read queue {queue}: {type(exc).__name__}") from None
        return QueueDepth(ready=result.message_count or 0, consumers=result.consumer_count or 0)
