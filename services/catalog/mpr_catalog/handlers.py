"""Broker entrypoints: parse the message, call the catalog, map the result. Nothing else."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from faststream import Context, StreamMessage
from faststream.rabbit import RabbitMessage, RabbitRouter

from mpr_catalog.domain import Action, InvalidNotification, parse_notification
from mpr_catalog.metrics import Metrics
from mpr_catalog.services import Catalog
from mpr_shared.contracts import ScanBucket, ScanResult
from mpr_shared.messaging import PoisonMessage, queue_router
from mpr_shared.settings import CommonSettings
from mpr_shared.topology import CATALOG_SCAN, COMMANDS, catalog_s3_events, s3_events_exchange

log = logging.getLogger(__name__)

CatalogDep = Annotated[Catalog, Context("catalog")]
MetricsDep = Annotated[Metrics, Context("metrics")]


async def raw_body(message: StreamMessage[Any]) -> bytes:
    """Hand the body over undecoded: the domain parser reports bad JSON with its reason."""
    return message.body


def build_router(settings: CommonSettings) -> RabbitRouter:
    """The catalog's subscribers: scan requests and bucket notifications."""
    s3_events = catalog_s3_events(settings)
    scans, notifications = queue_router(CATALOG_SCAN), queue_router(s3_events)

    @scans.subscriber(
        CATALOG_SCAN,
        COMMANDS,
        title="catalog.scan",
        description="ScanBucket request; the reply is a ScanResult.",
    )
    async def on_scan_bucket(
        command: ScanBucket, catalog: CatalogDep, metrics: MetricsDep
    ) -> ScanResult:
        """List the input bucket and register new media; reply with the counts."""
        log.info("ScanBucket %s: prefix=%r", command.id, command.prefix)
        started = time.perf_counter()
        try:
            result = await catalog.scan(command.prefix, envelope=command.caused())
        except Exception as exc:
            # The requester waits for a reply: answer with the reason rather than time out.
            log.exception("ScanBucket %s failed", command.id)
            return ScanResult(
                found=0, registered=0, skipped=0, files=[], error=f"{type(exc).__name__}: {exc}"
            )
        metrics.scans.labels("request").inc()
        metrics.scan_seconds.observe(time.perf_counter() - started)
        for outcome in ("registered", "updated", "skipped"):
            metrics.scanned_objects.labels(outcome).inc(getattr(result, outcome))
        return result

    @notifications.subscriber(
        s3_events,
        s3_events_exchange(settings),
        decoder=raw_body,
        title="s3-events",
        description="S3 bucket notifications (MinIO AMQP target or AWS event format).",
    )
    async def on_bucket_notification(
        body: bytes, message: RabbitMessage, catalog: CatalogDep, metrics: MetricsDep
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
            log.debug("ignored %s on %s/%s", record.event_name, record.bucket, record.key)
            metrics.notifications.labels(Action.IGNORE.value).inc()
        for applied in await catalog.apply_notification(notification):
            change, decision = applied.change, applied.decision
            log_fn = log.debug if decision.action is Action.IGNORE else log.info
            log_fn(
                "%s %s/%s (sequencer %s): %s, %s; asset %s",
                change.event_name,
                change.bucket,
                change.key,
                change.sequencer.lstrip("0"),
                decision.action.value,
                decision.reason,
                applied.asset_id,
            )
            metrics.notifications.labels(decision.action.value).inc()

    return RabbitRouter(routers=(scans, notifications))
