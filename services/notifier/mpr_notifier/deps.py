"""The one dependency mechanism: ``Annotated`` aliases of the container's parts.

A subscriber resolves an alias's ``Context`` (bootstrap puts the container on the broker's
context), a route its ``Depends`` (the app keeps the container in ``app.state``); an alias both
use carries both markers, and each framework ignores the other's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Query, Request
from faststream import Context

from mpr_notifier.api.auth import authenticated_client
from mpr_notifier.application.hub import EventHub
from mpr_notifier.application.webhooks import Webhooks
from mpr_notifier.metrics import Metrics
from mpr_notifier.settings import NotifierSettings
from mpr_shared.auth import ApiKeys

if TYPE_CHECKING:
    from mpr_notifier.bootstrap import Container


def container(request: Request) -> Container:
    found: Container = request.app.state.container
    return found


def _hub(request: Request) -> EventHub:
    return container(request).hub


def _metrics(request: Request) -> Metrics:
    return container(request).metrics


def _settings(request: Request) -> NotifierSettings:
    return container(request).settings


def _api_keys(request: Request) -> ApiKeys:
    return container(request).api_keys


ApiKeysDep = Annotated[ApiKeys, Depends(_api_keys)]


def _client(
    request: Request,
    keys: ApiKeysDep,
    api_key: Annotated[
        str | None,
        Query(description="API key, for browser EventSource clients that cannot send headers."),
    ] = None,
) -> str | None:
    return authenticated_client(keys, request.headers, api_key)


HubDep = Annotated[EventHub, Context("container.hub"), Depends(_hub)]
MetricsDep = Annotated[Metrics, Context("container.metrics"), Depends(_metrics)]
WebhooksDep = Annotated[Webhooks, Context("container.webhooks")]
SettingsDep = Annotated[NotifierSettings, Depends(_settings)]
ClientDep = Annotated[str | None, Depends(_client)]
