"""Broker entrypoints: parse the message, call the application, map the result. Nothing else."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from faststream import StreamMessage
from faststream.rabbit import RabbitMessage, RabbitResponse, RabbitRouter

from mpr_catalog.application.notifications import AppliedChange
from mpr_catalog.deps import MetricsDep, NotificationsDep, RegistrarDep, ScannerDep
from mpr_catalog.domain.assets import ObjectInfo
from mpr_catalog.domain.notifications import Action, InvalidNotification, parse_notification
from mpr_shared.contracts import RegisterObject, ScanBucket, ScanResult
from mpr_shared.messaging import PoisonMessage, publish_properties, queue_router
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import (
    CATALOG_REGISTER,
    CATALOG_SCAN,
    COMMANDS,
    catalog_s3_events,
    s3_events_exchange,
)

log = logging.getLogger(__name__)


async def on_scan_bucket(
    command: ScanBucket, message: RabbitMessage, scanner: ScannerDep, metrics: MetricsDep
) -> RabbitResponse:
    """List the input bucket and register new media; reply with the counts."""
    log.info("ScanBucket %s: prefix=%a", command.id, command.prefix)
    try:
        report = await scanner.scan(command.prefix, envelope=command.caused())
    except Exception as exc:
        # The requester waits for a reply: answer with the reason rather than time out.
        log.exception("ScanBucket %s failed", command.id)
        error = f"{type(exc).__name__}: {exc}"
        return _reply(ScanResult(found=0, registered=0, skipped=0, files=[], error=error), message)
    metrics.scanned("request", report)
    return _reply(report.result(), message)


async def on_register_object(command: RegisterObject, registrar: RegistrarDep) -> None:
    """Register one object now (a completed upload); the probe follows. Idempotent."""
    log.info(
        "RegisterObject %s: %s/%a (%s)",
        command.id,
        command.bucket,
        command.key,
        command.requested_by,
    )
    if command.bucket != registrar.bucket:
        raise PoisonMessage(
            f"the catalog registers bucket {registrar.bucket}, not {command.bucket}"
        )
    obj = ObjectInfo(key=command.key, size=command.size_bytes, etag=command.etag)
    result = await registrar.register_object(obj, envelope=command.caused())
    if result.refused:
        log.warning("RegisterObject %s refused: %s", command.id, result.refused[0].reason)


def _reply(result: ScanResult, request: RabbitMessage) -> RabbitResponse:
    """The reply FastStream sends to the request's reply_to, with MPR's publish properties."""
    properties = publish_properties(
        uuid.uuid4(), type(result).__name__, correlation_id=request.correlation_id
    )
    return RabbitResponse(result.model_dump(mode="json"), **properties.kwargs())


async def text_body(message: StreamMessage[Any]) -> str:
    """The body as text, not JSON: the domain parser reports bad JSON with its reason."""
    # Bytes that are not UTF-8 raise UnicodeDecodeError here: poison for queue_router's
    # middleware, dead-lettered at once.
    return message.body.decode("utf-8")


async def on_bucket_notification(
    body: str, message: RabbitMessage, notifications: NotificationsDep, metrics: MetricsDep
) -> None:
    """Register created objects and mark removed ones; ignore everything else."""
    log.debug("bucket notification %s", message.message_id)
    try:
        notification = parse_notification(body)
    except InvalidNotification as exc:
        raise PoisonMessage(str(exc)) from exc
    if notification.test_event:
        log.debug("s3:TestEvent ignored")
    for record in notification.ignored:
        log.debug("ignored %s on %s/%a", record.event_name, record.bucket, record.key)
        metrics.notification_record(Action.IGNORE)
    for applied in await notifications.apply(notification):
        _log_applied(applied)
        metrics.notification_record(applied.decision.action)


def _log_applied(applied: AppliedChange) -> None:
    change, decision = applied.change, applied.decision
    quiet = decision.action in (Action.IGNORE, Action.REFUSE)  # REFUSE logged with its reason
    (log.debug if quiet else log.info)(
        "%s %s/%a (sequencer %s): %s, %s; asset %s",
        change.event_name,
        change.bucket,
        change.key,
        change.sequencer.lstrip("0"),
        decision.action.value,
        decision.reason,
        applied.asset_id,
    )


def router(settings: CommonSettings) -> RabbitRouter:
    """The catalog's subscribers: scan requests and bucket notifications, each on its queue."""
    s3_events = catalog_s3_events(settings)
    scans, notifications = queue_router(CATALOG_SCAN), queue_router(s3_events)
    registrations = queue_router(CATALOG_REGISTER)
    scans.subscriber(
        CATALOG_SCAN,
        COMMANDS,
        title="catalog.scan",
        description="ScanBucket request; the reply is a ScanResult.",
    )(on_scan_bucket)
    registrations.subscriber(
        CATALOG_REGISTER,
        COMMANDS,
        title="catalog.register",
        description="RegisterObject: register one object now (a completed upload).",
    )(on_register_object)
    notifications.subscriber(
        s3_events,
        s3_events_exchange(settings),
        decoder=text_body,
        title="s3-events",
        description="S3 bucket notifications (MinIO AMQP target or AWS event format).",
    )(on_bucket_notification)
    return RabbitRouter(routers=(scans, registrations, notifications))
