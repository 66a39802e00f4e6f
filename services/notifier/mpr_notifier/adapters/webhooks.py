"""Signed webhook delivery over HTTP: Standard Webhooks signatures, bounded retries, and an SSRF
guard that connects to the very address it checked."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

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
# The request never reached the receiver: the next checked address may answer.
NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout)

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


def pinned(
    client: httpx.AsyncClient, url: httpx.URL, address: str, headers: dict[str, str], body: str
) -> httpx.Request:
    """A POST of ``body`` to ``url`` that connects to ``address``; the Host header and, over
    TLS, the SNI name and the certificate check keep the URL's host name."""
    # Connecting to the address that was checked closes the DNS-rebinding window between the
    # SSRF check and the connection. httpx's ``sni_hostname`` request extension names the
    # TLS server: https://www.python-httpx.org/advanced/extensions/#request-extensions
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    return client.build_request(
        "POST",
        url.copy_with(host=address),
        content=body.encode(),
        headers={**headers, "host": url.netloc.decode("ascii")},
        extensions=extensions,
    )


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
        target = _http_url(url)
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
                    addresses = await self._checked_addresses(target)
                    await self._post(target, addresses, message_id, body)
        except TransientWebhookError as exc:
            raise WebhookFailed(
                f"webhook to {url} failed after {self._max_attempts} attempts: {exc}"
            ) from exc

    async def _checked_addresses(self, url: httpx.URL) -> list[str]:
        """The host's addresses; refused unless each is public (or private ones are allowed)."""
        host = url.host
        try:
            addresses = await self._resolve(host, url.port or _default_port(url))
        except OSError as exc:
            raise TransientWebhookError(f"cannot resolve {host}: {exc}") from exc
        refused = [a for a in addresses if not is_public(a)]
        if not addresses or (refused and not self._allow_private):
            raise WebhookFailed(
                f"refused webhook URL {str(url)!r}: {host} resolves to a non-public "
                f"address {refused or addresses} (set WEBHOOK_ALLOW_PRIVATE=true to allow)"
            )
        return addresses

    async def _post(self, url: httpx.URL, addresses: list[str], message_id: str, body: str) -> None:
        """POST to the first checked address that accepts a connection."""
        headers = self._signed_headers(message_id, body)
        failures: list[str] = []
        for address in addresses:
            request = pinned(self._client, url, address, headers, body)
            try:
                response = await self._client.send(request)
            except NOT_CONNECTED as exc:
                failures.append(f"{address}: {type(exc).__name__}: {exc}")
                continue
            except httpx.HTTPError as exc:
                raise TransientWebhookError(f"{type(exc).__name__}: {exc}") from exc
            return _outcome(url, response)
        raise TransientWebhookError("could not connect: " + "; ".join(failures))

    def _signed_headers(self, message_id: str, body: str) -> dict[str, str]:
        # Signed per attempt: receivers reject timestamps older than five minutes.
        now = datetime.now(UTC)
        return {
            "content-type": "application/json",
            "user-agent": "mpr-notifier",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(message_id, now, body),
        }


def _http_url(url: str) -> httpx.URL:
    """``url`` parsed; WebhookFailed unless it is http(s) with a host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookFailed(f"refused webhook URL {url!r}: only http(s) URLs with a host")
    return parsed


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _outcome(url: httpx.URL, response: httpx.Response) -> None:
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
