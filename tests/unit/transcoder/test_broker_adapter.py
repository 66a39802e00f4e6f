"""The event publisher adapter: a nacked publish is a transient failure, never a job's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiormq.exceptions import DeliveryError
from pamqp.commands import Basic

from mpr_shared.contracts import JobStarted
from mpr_transcoder.adapters.broker import BrokerEventPublisher
from mpr_transcoder.domain.errors import TransientError

pytestmark = pytest.mark.unit


class NackingBroker:
    """A broker whose every publish RabbitMQ nacks (a queue on a node that just died)."""

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise DeliveryError(None, Basic.Nack(delivery_tag=1))


async def test_a_nacked_event_is_retried_as_a_transient_error() -> None:
    publisher = BrokerEventPublisher(NackingBroker())  # type: ignore[arg-type]
    with pytest.raises(TransientError, match="RabbitMQ refused JobStarted"):
        await publisher.publish(JobStarted(job_id=uuid.uuid4(), worker="w"))
