"""Signed webhook delivery over HTTP: Standard Webhooks signatures, bounded retries, SSRF guard."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mpr_notifier.application.webhooks import WebhookFailed

log = logging.getLogger(__name__)

# Statuses worth another try: the receiver is overloaded or briefly down.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 30.0

Resolver = Callable[[str, int], Awaitable[list[str]]]


class TransientWebhookError(Exception):
    """A failure another attempt may fix (network error, timeout, 5xx, 429)."""


async def resolve(host: str, port: int) -> list[str]:
    """Every address the host name resolves to."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class HttpWebhookSender:
    """WebhookSender over httpx: one signed POST per attempt, retried with backoff."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        secret: str,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        allow_private: bool = False,
        resolver: Resolver = resolve,
    ) -> None:
        self._client = client
        self._signer = Webhook(secret)
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._allow_private = allow_private
        self._resolve = resolver

    async def send(self, url: str, message_id: str, body: str) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential_jitter(
                multiplier=self._backoff, jitter=self._backoff, max=MAX_BACKOFF_SECONDS
            ),
            retry=retry_if_exception_type(TransientWebhookError),
            before_sleep=_log_retry(url, message_id),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._check_target(url)
                    await self._post(url, message_id, body)
        except TransientWebhookError as exc:
            raise WebhookFailed(
                f"webhook to {url} failed after {self._max_attempts} attempts: {exc}"
            ) from exc

    async def _check_target(self, url: str) -> None:
        """Refuse non-HTTP URLs and, unless allowed, loopback/private/link-local targets (SSRF)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookFailed(f"refused webhook URL {url!r}: only http(s) URLs with a host")
        if self._allow_private:
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self._resolve(parts.hostname, port)
        except OSError as exc:
            raise TransientWebhookError(f"cannot resolve {parts.hostname}: {exc}") from exc
        private = [a for a in addresses if not is_public(a)]
        if private or not addresses:
            raise WebhookFailed(
                f"refused webhook URL {url!r}: {parts.hostname} resolves to a non-public "
                f"address {private or addresses} (set WEBHOOK_ALLOW_PRIVATE=true to allow)"
            )

    async def _post(self, url: str, message_id: str, body: str) -> None:
        # Signed per attempt: receivers reject timestamps older than five minutes.
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "mpr-notifier",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(message_id, now, body),
        }
        try:
            response = await self._client.post(url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            raise TransientWebhookError(f"{type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        if response.status_code in RETRY_STATUSES:
            raise TransientWebhookError(f"HTTP {response.status_code}")
        raise WebhookFailed(f"webhook to {url} rejected with HTTP {response.status_code}")


def _log_retry(url: str, message_id: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0
        log.warning(
            "webhook %s to %s: attempt %d failed (%s); retrying in %.1fs",
            message_id,
            url,
            state.attempt_number,
            exc,
            delay,
        )

    return before_sleep


def make_client(timeout_seconds: float) -> httpx.AsyncClient:
    """An HTTP client that never follows redirects (a redirect could point inside the network)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), follow_redirects=False)
