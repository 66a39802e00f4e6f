"""Prometheus metrics of one notifier app (its own registry, so tests can run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """Counters and gauges served at GET /metrics (mpr_shared.health)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.clients = Gauge(
            "mpr_notifier_sse_clients", "Connected SSE clients.", registry=self.registry
        )
        self.events_received = Counter(
            "mpr_notifier_events_received",
            "Events consumed from the broker, by routing key.",
            ["event"],
            registry=self.registry,
        )
        self.events_delivered = Counter(
            "mpr_notifier_events_delivered",
            "Events written to SSE clients.",
            registry=self.registry,
        )
        self.clients_dropped = Counter(
            "mpr_notifier_sse_clients_dropped",
            "SSE clients closed because their queue overflowed.",
            registry=self.registry,
        )
        self.webhooks_sent = Counter(
            "mpr_notifier_webhooks_sent", "Webhooks delivered.", registry=self.registry
        )
        self.webhooks_deferred = Counter(
            "mpr_notifier_webhooks_deferred",
            "Webhooks put back to wait for the gateway to apply the job's event.",
            registry=self.registry,
        )
        self.webhooks_failed = Counter(
            "mpr_notifier_webhooks_failed",
            "Webhooks given up on (dead-lettered).",
            registry=self.registry,
        )
