"""UnackedCounter over RabbitMQ's management HTTP API (the plugin rabbitmq_management).

AMQP reports a queue's ready messages and consumers but not its unacknowledged deliveries;
the management API does (``messages_unacknowledged``).
https://www.rabbitmq.com/docs/http-api-reference#get-apiqueuesvhostname
"""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote, urlsplit

import httpx

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0


class NoUnackedCount:
    """Without RABBITMQ_MANAGEMENT_URL the count is unknown."""

    async def unacked(self, queue: str) -> int | None:
        return None


class ManagementApi:
    """GET /api/queues/{vhost}/{queue}; any failure is logged and answered with None."""

    def __init__(
        self, url: str, vhost: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        parts = urlsplit(url)
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        self._base = f"{parts.scheme or 'http'}://{netloc}{parts.path.rstrip('/')}"
        self._vhost = quote(vhost, safe="")
        self._client = httpx.AsyncClient(auth=auth, timeout=TIMEOUT_SECONDS, transport=transport)

    async def unacked(self, queue: str) -> int | None:
        url = f"{self._base}/api/queues/{self._vhost}/{quote(queue, safe='')}"
        try:
            response = await self._client.get(url, params={"columns": "messages_unacknowledged"})
            response.raise_for_status()
            count = response.json().get("messages_unacknowledged")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("RabbitMQ management API: no unacked count for %s: %s", queue, exc)
            return None
        return count if isinstance(count, int) else None

    async def close(self) -> None:
        await self._client.aclose()


def amqp_vhost(amqp_url: str) -> str:
    """The vhost an AMQP URL names: its path without the leading '/', '/' when empty."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"
