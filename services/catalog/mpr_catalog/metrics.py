"""Prometheus metrics of one catalog (its own registry, so tests can build several)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mpr_catalog.application.scanning import ScanReport
from mpr_catalog.domain.notifications import Action
from mpr_catalog.domain.probe import ProbeOutcome


class Metrics:
    """What GET /metrics serves when HEALTH_PORT is set."""

    def __init__(self, outbox_lag: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.notifications = Counter(
            "mpr_catalog_notification_records",
            "Bucket notification records, by what they did (register, remove, ignore, …).",
            ["action"],
            registry=self.registry,
        )
        self.scans = Counter(
            "mpr_catalog_scans", "Completed scans, by trigger.", ["trigger"], registry=self.registry
        )
        self.scan_seconds = Histogram(
            "mpr_catalog_scan_seconds",
            "Wall time of a scan.",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            registry=self.registry,
        )
        self.scanned_objects = Counter(
            "mpr_catalog_scanned_objects",
            "Media objects seen by scans, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.refused_keys = Counter(
            "mpr_catalog_refused_keys",
            "Keys not registered because they break the S3 key rules, by where they were seen.",
            ["source"],
            registry=self.registry,
        )
        self.probes = Counter(
            "mpr_catalog_probes", "Finished probes, by status.", ["status"], registry=self.registry
        )
        self.probe_backlog = Gauge(
            "mpr_catalog_probe_backlog", "Assets waiting for a probe.", registry=self.registry
        )
        self.outbox_lag = Gauge(
            "mpr_catalog_outbox_lag_seconds",
            "Age of the oldest catalog outbox row not yet published (0 when none).",
            registry=self.registry,
        )
        self.outbox_lag.set_function(outbox_lag)

    def scanned(self, trigger: str, report: ScanReport) -> None:
        self.scans.labels(trigger).inc()
        self.scan_seconds.observe(report.seconds)
        for outcome in ("registered", "updated", "skipped"):
            self.scanned_objects.labels(outcome).inc(getattr(report, outcome))
        self.refused_keys.labels("scan").inc(len(report.refused))

    def notification_record(self, action: Action) -> None:
        self.notifications.labels(action.value).inc()
        if action is Action.REFUSE:
            self.refused_keys.labels("notification").inc()

    def probed(self, outcome: ProbeOutcome | None, backlog: int) -> None:
        if outcome is not None:
            self.probes.labels(outcome.status.value).inc()
        self.probe_backlog.set(backlog)
