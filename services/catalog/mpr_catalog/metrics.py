"""Prometheus metrics of one catalog (its own registry, so tests can build several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Counters served at GET /metrics when HEALTH_PORT is set."""

    def __init__(self) -> None:
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
        self.probes = Counter(
            "mpr_catalog_probes", "Finished probes, by status.", ["status"], registry=self.registry
        )
        self.probe_backlog = Gauge(
            "mpr_catalog_probe_backlog", "Assets waiting for a probe.", registry=self.registry
        )
