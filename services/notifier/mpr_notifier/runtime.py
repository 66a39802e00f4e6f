"""The notifier's collaborators, shared by the broker subscribers and the HTTP routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from mpr_notifier.handlers import WebhookSender, WebhookTargets
from mpr_notifier.hub import EventHub
from mpr_notifier.metrics import Metrics
from mpr_notifier.settings import NotifierSettings


@dataclass
class Runtime:
    """Built without I/O; the lifespan attaches the webhook ports once their resources exist."""

    settings: NotifierSettings
    hub: EventHub
    metrics: Metrics = field(default_factory=Metrics)
    targets: WebhookTargets | None = None
    sender: WebhookSender | None = None

    @classmethod
    def create(cls, settings: NotifierSettings) -> Runtime:
        hub = EventHub(settings.sse_buffer_size, settings.sse_client_queue_size)
        return cls(settings=settings, hub=hub)
